"""Scores computed ahead of time by `kattr-batch`, used by the catalog apps in place of a model.

`kattr-batch` (Apache Beam, `kattr.apps.beam_scoring`) writes a folder:

    batch.json                       written last: the model's kattr.json, counts, settings
    scores-00000-of-00004.jsonl ...  one line per scored image: path, scores, embedding
                                     (and the appearance descriptor with --appearance)
    failures-00000-of-00001.jsonl    one line per image that could not be scored: manifest,
                                     row, path, reason

`StoredScores.open(DIR)` reads it and answers `score_files` like a `Scorer`, so enrichment,
audit, selection and indexing run on it unchanged (`--scores DIR` on their commands). Rows are
matched by image path, as `manifest_images` resolves them, so the manifest and image root must
be the ones the batch scored; a row the batch never saw is an error that names it.

Example:
    >>> with StoredScores.open("scores/2026-12-03") as scorer:
    ...     frame, paths = manifest_images("catalog.csv")
    ...     result = scorer.score_files(paths)
    >>> len(result.failures), result.source["kind"]
    (2, 'scores')
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kattr.apps.scoring import (
    APPEARANCE_SIDE,
    CatalogScores,
    ImageFailure,
    l2_normalise,
    taxonomy_from_metadata,
)

__all__ = [
    "BATCH_RECORD",
    "FAILURES_PREFIX",
    "SCORES_PREFIX",
    "StoredScores",
    "image_key",
]

BATCH_RECORD = "batch.json"
SCORES_PREFIX = "scores"
FAILURES_PREFIX = "failures"


def image_key(path: str) -> str:
    """The key a scored image is stored and looked up under: its absolute path.

    Remote paths (``gs://...``) are kept as written.

    Example:
        >>> image_key("catalog/../catalog/a.jpg") == os.path.abspath("catalog/a.jpg")
        True
    """
    return path if "://" in path else os.path.abspath(path)


def read_jsonl_shards(directory: Path, prefix: str) -> list[dict]:
    """Every record of the `<prefix>-*.jsonl` shards in `directory`, in shard order."""
    records = []
    for shard in sorted(glob.glob(str(directory / f"{prefix}-*.jsonl"))):
        with open(shard, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{shard}: line {number}: not JSON ({error.msg})") from None
    return records


class StoredScores:
    """The scores of a `kattr-batch` folder, answering `score_files` like a `Scorer`.

    Args:
        directory: the folder `kattr-batch` wrote (it must hold `batch.json`).
        record: the content of its `batch.json`.
        scored: image key -> the stored record of that image.
        failed: image key -> why it could not be scored.

    Example:
        >>> scorer = StoredScores.open("scores/2026-12-03")
        >>> scorer.source["model_dir"]
        '/exports/shirts/3'
    """

    model = None  # no Keras model: Grad-CAM overlays need a run (--run)

    def __init__(self, directory: Path, record: dict, scored: dict, failed: dict):
        self.directory = directory
        self.record = record
        self.taxonomy, self.thresholds = taxonomy_from_metadata(
            record["metadata"], str(directory / BATCH_RECORD)
        )
        self.source = {"kind": "scores", "path": str(directory.resolve()),
                       "model_dir": record["model_dir"]}
        self.image_shape = None
        self._scored = scored
        self._failed = failed

    @classmethod
    def open(cls, directory: str | os.PathLike) -> StoredScores:
        """Reads a `kattr-batch` folder.

        Raises:
            FileNotFoundError: no `batch.json` (not a kattr-batch folder, or a run that did not
                finish: `batch.json` is written last).
            ValueError: a shard line that is not JSON or lacks a field.
        """
        directory = Path(directory)
        record_path = directory / BATCH_RECORD
        if not record_path.exists():
            raise FileNotFoundError(
                f"{record_path}: not found; expected the folder of a finished kattr-batch run "
                "(batch.json is written when every shard is complete)"
            )
        record = json.loads(record_path.read_text())
        scored, failed = {}, {}
        for item in read_jsonl_shards(directory, SCORES_PREFIX):
            _require(item, ("path", "scores", "embedding"), directory, SCORES_PREFIX)
            scored[image_key(item["path"])] = item
        for item in read_jsonl_shards(directory, FAILURES_PREFIX):
            _require(item, ("path", "reason"), directory, FAILURES_PREFIX)
            failed.setdefault(image_key(item["path"]), item["reason"])
        return cls(directory, record, scored, failed)

    def predict(self, images: Sequence[bytes]):
        raise ValueError(
            f"{self.directory}: stored scores cannot score new images; use the model they were "
            f"computed with (--model-dir {self.record['model_dir']})"
        )

    def score_files(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 32,
        view: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        appearance: bool = False,
    ) -> CatalogScores:
        """The stored scores of `paths`, row by row; failed images get NaN rows.

        Args:
            paths: the image of each manifest row.
            batch_size: unused (kept for `Scorer` compatibility).
            view: must be None: test-time views need the model.
            progress: called once with (rows, rows).
            appearance: also return the stored appearance descriptors (`kattr-batch
                --appearance`).

        Raises:
            ValueError: a row the batch did not score, a view, or missing descriptors.
        """
        if view is not None:
            raise ValueError(
                f"{self.directory}: stored scores hold no test-time views ({view!r}); drop "
                f"--tta, or score with --model-dir {self.record['model_dir']}"
            )
        if appearance and not self.record.get("appearance"):
            raise ValueError(
                f"{self.directory}: no appearance descriptors; rerun kattr-batch with "
                "--appearance to build a search index from stored scores"
            )
        paths = [str(path) for path in paths]
        count = len(paths)
        scores = {a.name: np.full((count, len(a.values)), np.nan, np.float32)
                  for a in self.taxonomy.attributes}
        width = len(next(iter(self._scored.values()))["embedding"]) if self._scored else 0
        embeddings = np.full((count, width), np.nan, np.float32)
        descriptors = (np.full((count, 3 * APPEARANCE_SIDE**2), np.nan, np.float32)
                       if appearance else None)
        failures = []
        for row, path in enumerate(paths):
            key = image_key(path)
            item = self._scored.get(key)
            if item is None:
                if key not in self._failed:
                    raise ValueError(
                        f"{self.directory}: row {row + 1} ({path}) was not scored by this "
                        "kattr-batch run; run it on this manifest and image root"
                    )
                failures.append(ImageFailure(row, path, self._failed[key]))
                continue
            for name in scores:
                scores[name][row] = item["scores"][name]
            embeddings[row] = item["embedding"]
            if descriptors is not None:
                descriptors[row] = item["appearance"]
        embeddings = l2_normalise(embeddings)
        if progress is not None:
            progress(count, count)
        return CatalogScores(
            scores=scores, embeddings=embeddings, taxonomy=self.taxonomy,
            thresholds=dict(self.thresholds), paths=paths, failures=failures,
            source=dict(self.source), appearance=descriptors,
        )

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> StoredScores:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _require(item: dict, fields: tuple[str, ...], directory: Path, prefix: str) -> None:
    missing = [name for name in fields if name not in item]
    if missing:
        raise ValueError(
            f"{directory}/{prefix}-*.jsonl: a record lacks {missing}; expected kattr-batch "
            f"output. Received keys: {sorted(item)}"
        )
