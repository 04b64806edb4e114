"""Visual search: an index of catalog embeddings and look-alike queries with attribute filters.

The index holds, for every scored catalog image, the model's pooled `embedding` and a
model-free `appearance_descriptor` (a 16 px thumbnail), both L2-normalised, and the image's
manifest row as metadata. The similarity of a query to a product is

    similarity = (1 - w) * cosine(embeddings) + w * cosine(appearance descriptors)

with `w = appearance_weight` (0 gives pure model-embedding search) and `distance = 1 -
similarity`. The mix exists because an attribute model's embedding groups products by their
attributes but barely tells two red striped shirts apart (on the synthetic catalog a JPEG
re-encoded copy finds its own product first about 1 time in 5 with `w = 0`), while the
thumbnail recognises the same photo after re-encoding or a slight crop; tests/test_apps_search.py
holds the measured rates. Search is exact, with NumPy, block by block over the stored matrices
(memory-mapped when loaded), so memory stays bounded by `block_rows` rows whatever the catalog
size.

    INDEX_DIR/
      CURRENT            one line: the name of the live version folder
      v-<time>-<id>/     one complete version of the index:
        index.json       format, metric, count, widths, the source that built it (with the
                         served `model_version` that answered every row), the taxonomy
        embeddings.npy   float32 [count, width], L2-normalised model embeddings
        appearance.npy   float32 [count, 768], L2-normalised appearance descriptors
        metadata.csv     the manifest rows indexed, plus `_row` (1-based manifest row) and
                         `_path` (the image file)

Replacing an index is atomic for readers. `SimilarityIndex.save` writes a new version folder
completely (each file fsynced, `kattr._atomic`), then swaps `CURRENT` with an atomic rename,
then deletes older versions best effort, keeping the one it replaced. A crash before the swap
leaves the old index live and whole (the orphaned new folder is deleted by the next save); a
crash after it leaves the new one. A reader that loaded the old index keeps working: the
version it read stays on disk until the next save, and after that its memory-mapped arrays stay
readable on POSIX (an unlinked file lives while it is mapped); `load` follows `CURRENT` again
when a save removed the version it was opening. An index in the former flat layout (the four
files directly in INDEX_DIR, no `CURRENT`) still loads, and saving over it works: its files are
then the version replaced. One writer at a time: concurrent saves to one folder are not
supported.

Exact search costs count x width multiply-adds per query: about 0.1 s for a million products
of width 64-256 on one core. Beyond that, an approximate index (faiss' IVF/HNSW, hnswlib) over
the same normalised vectors with inner-product metric is the way to scale; see the README.

Example:
    >>> with Scorer.from_run("runs/shirts") as scorer:
    ...     index, failures = index_manifest("catalog.csv", "index", scorer)
    ...     similar(SimilarityIndex.load("index"), scorer, "query.jpg", k=5,
    ...             where={"colour": "red"})[["rank", "distance", "image"]]
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kattr._atomic import atomic_path, write_text_atomic
from kattr.apps._cells import predicted_decisions
from kattr.apps.scoring import (
    CatalogScores,
    ImageDecodeError,
    ImageFailure,
    Scorer,
    appearance_descriptor,
    manifest_images,
)
from kattr.config import TaxonomyConfig
from kattr.labels import cell_values, column_parsing, read_manifest, write_manifest
from kattr.postprocess import category_indices

__all__ = [
    "DEFAULT_APPEARANCE_WEIGHT",
    "INDEX_FORMAT",
    "SearchError",
    "SimilarityIndex",
    "build_index",
    "index_manifest",
    "parse_where",
    "similar",
]

INDEX_FORMAT = 1
INDEX_FILE = "index.json"
EMBEDDINGS_FILE = "embeddings.npy"
APPEARANCE_FILE = "appearance.npy"
DEFAULT_APPEARANCE_WEIGHT = 0.9
METADATA_FILE = "metadata.csv"
ROW_COLUMN = "_row"
PATH_COLUMN = "_path"
DEFAULT_BLOCK_ROWS = 65536
CURRENT_FILE = "CURRENT"
_VERSION_NAME = re.compile(r"v-[0-9A-Za-z_-]+")
_FLAT = "."  # the "version" of an index in the former flat layout: INDEX_DIR itself
_FLAT_FILES = (INDEX_FILE, EMBEDDINGS_FILE, APPEARANCE_FILE, METADATA_FILE)
_LOAD_ATTEMPTS = 3


class SearchError(ValueError):
    """A bad index folder, filter or query; the message names the file, column or value."""


class SimilarityIndex:
    """Exact cosine nearest-neighbour search over L2-normalised embeddings (NumPy, in blocks).

    Args:
        embeddings: float32 [count, width], L2-normalised (may be a read-only memory map).
        appearance: float32 [count, 768] L2-normalised `appearance_descriptor`s.
        metadata: one manifest row per embedding, with `_row` and `_path` columns.
        taxonomy: the model's taxonomy (to canonicalise attribute filters).
        source: the model source that computed the embeddings (`Scorer.source`).
        block_rows: rows compared per block; bounds the memory of a search.

    Example:
        >>> index = SimilarityIndex.load("index")
        >>> positions, distances = index.search(query_embeddings, query_appearance, k=10)
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        appearance: np.ndarray,
        metadata: pd.DataFrame,
        taxonomy: TaxonomyConfig,
        source: Mapping,
        block_rows: int = DEFAULT_BLOCK_ROWS,
    ):
        for name, array in (("embeddings", embeddings), ("appearance", appearance)):
            if array.ndim != 2 or len(array) != len(metadata):
                raise SearchError(
                    f"{name} must be [count, width] with one row per metadata row "
                    f"({len(metadata)}). Received: shape {array.shape}"
                )
        if block_rows < 1:
            raise SearchError(f"block_rows must be >= 1. Received: {block_rows}")
        self.embeddings = embeddings
        self.appearance = appearance
        self.metadata = metadata.reset_index(drop=True)
        self.taxonomy = taxonomy
        self.source = dict(source)
        self.block_rows = block_rows
        self._attributes = {attribute.name: attribute for attribute in taxonomy.attributes}
        for attribute in taxonomy.attributes:
            # A column read by several attributes follows the first, as `column_parsing` does.
            self._attributes.setdefault(attribute.source_column, attribute)

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def width(self) -> int:
        return int(self.embeddings.shape[1])

    def search(
        self,
        queries: np.ndarray,
        query_appearance: np.ndarray | None = None,
        k: int = 10,
        mask: np.ndarray | None = None,
        appearance_weight: float = DEFAULT_APPEARANCE_WEIGHT,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest indexed rows of each query.

        Args:
            queries: model embeddings, float [width] or [queries, width] (normalised here).
            query_appearance: their `appearance_descriptor`s [queries, 768]; needed unless
                `appearance_weight` is 0.
            k: neighbours per query (>= 1); fewer when fewer rows pass `mask`.
            mask: bool [count]: only these rows may be returned.
            appearance_weight: `w` of the module docstring, in [0, 1].

        Returns:
            `(positions, distances)`, each [queries, k'] sorted by increasing distance;
            positions index `metadata`.
        """
        if k < 1:
            raise SearchError(f"k must be >= 1. Received: k={k}")
        if not 0.0 <= appearance_weight <= 1.0:
            raise SearchError(
                f"appearance_weight must be in [0, 1]. Received: {appearance_weight}"
            )
        queries = _normalised(queries, self.width, "queries")
        weight = float(appearance_weight)
        if weight > 0:
            if query_appearance is None:
                raise SearchError("query_appearance is needed when appearance_weight > 0")
            query_appearance = _normalised(
                query_appearance, self.appearance.shape[1], "query_appearance"
            )
        best_positions = np.zeros((len(queries), 0), np.int64)
        best_scores = np.zeros((len(queries), 0), np.float32)
        for start in range(0, len(self), self.block_rows):
            block = slice(start, start + self.block_rows)
            similarity = (1.0 - weight) * (queries @ np.asarray(self.embeddings[block]).T)
            if weight > 0:
                similarity += weight * (query_appearance @ np.asarray(self.appearance[block]).T)
            if mask is not None:
                similarity[:, ~mask[block]] = -np.inf
            take = min(k, similarity.shape[1])
            part = np.argpartition(-similarity, take - 1, axis=1)[:, :take]
            best_positions = np.concatenate([best_positions, part + start], axis=1)
            best_scores = np.concatenate(
                [best_scores, np.take_along_axis(similarity, part, axis=1)], axis=1
            )
            keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
            best_positions = np.take_along_axis(best_positions, keep, axis=1)
            best_scores = np.take_along_axis(best_scores, keep, axis=1)
        allowed = np.isfinite(best_scores).all(axis=0)  # rows masked out everywhere drop off
        best_positions, best_scores = best_positions[:, allowed], best_scores[:, allowed]
        return best_positions, (1.0 - best_scores).astype(np.float32)

    def cell_values(self, column: str) -> list[set[str]]:
        """The canonical value set of each indexed row's cell in `column` (empty when blank).

        Cells are read as training reads them (`kattr.labels.column_values`): an attribute's
        column is split on the separator and merged, the category column holds one value.
        """
        resolved = self.resolve_column(column)
        separator, merge = column_parsing(self.taxonomy, resolved)
        return [set(cell_values(cell, separator, merge)) for cell in self.metadata[resolved]]

    def canonical_value(self, column: str, value: str) -> str:
        """A filter value as cells are compared: canonical, merged, and checked for attributes."""
        resolved = self.resolve_column(column)
        attribute = self._attributes.get(resolved)
        _, merge = column_parsing(self.taxonomy, resolved)
        folded = next(iter(cell_values(value, None, merge)), "")
        if resolved == self.taxonomy.category_column:
            if folded not in self.taxonomy.categories:
                raise SearchError(
                    f"--where {column}={value}: {value!r} is not a category; expected one of "
                    f"{self.taxonomy.categories}"
                )
        elif attribute is not None and folded not in attribute.values:
            raise SearchError(
                f"--where {column}={value}: {value!r} is not a value of attribute "
                f"{attribute.name!r}; expected one of {attribute.values}"
            )
        return folded

    def mask(self, where: Mapping[str, str | Sequence[str]]) -> np.ndarray:
        """bool [count]: rows whose cell in each column holds the value (or one of the values)."""
        mask = np.ones(len(self), dtype=bool)
        for column, wanted in where.items():
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            wanted = {self.canonical_value(column, value) for value in wanted}
            cells = self.cell_values(column)
            mask &= np.array([bool(cell & wanted) for cell in cells], dtype=bool)
        return mask

    def resolve_column(self, column: str) -> str:
        """The metadata column of a filter name (a manifest column or an attribute name)."""
        attribute = self._attributes.get(column)
        if attribute is not None:
            return attribute.source_column
        if column in self.metadata.columns and column not in (ROW_COLUMN, PATH_COLUMN):
            return column
        available = [c for c in self.metadata.columns if c not in (ROW_COLUMN, PATH_COLUMN)]
        raise SearchError(
            f"unknown column or attribute {column!r} in a filter; expected one of "
            f"{sorted(set(available) | {a.name for a in self.taxonomy.attributes})}"
        )

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes the index folder; an existing index there is replaced atomically for readers
        (module docstring): a crash at any point leaves the old index or the new one loadable.
        """
        from kattr._schema import to_data

        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise SearchError(f"{directory}: exists and is not a folder; choose a new folder")
        previous = None
        if directory.is_dir():
            with contextlib.suppress(SearchError):  # a damaged CURRENT: this save repairs it
                previous = _live_version(directory)
        if previous is None and directory.is_dir() and not _only_versions(directory):
            raise SearchError(
                f"{directory}: exists and is not a kattr index (no {CURRENT_FILE} nor "
                f"{INDEX_FILE}); choose a new folder"
            )
        directory.mkdir(parents=True, exist_ok=True)
        name = f"v-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        version = directory / name
        version.mkdir()
        try:
            with atomic_path(version / EMBEDDINGS_FILE) as tmp:
                np.save(tmp, np.asarray(self.embeddings, np.float32))
            with atomic_path(version / APPEARANCE_FILE) as tmp:
                np.save(tmp, np.asarray(self.appearance, np.float32))
            write_manifest(self.metadata, version / METADATA_FILE)
            document = {
                "format": INDEX_FORMAT, "backend": "numpy-exact", "metric": "cosine",
                "count": len(self), "width": self.width,
                "appearance_width": int(self.appearance.shape[1]), "source": self.source,
                "model_version": self.source.get("version"),
                "taxonomy": to_data(self.taxonomy),
            }
            write_text_atomic(version / INDEX_FILE, json.dumps(document, indent=2) + "\n")
            write_text_atomic(directory / CURRENT_FILE, name + "\n")  # the atomic swap
        except BaseException:
            live = None
            with contextlib.suppress(OSError, SearchError):
                live = _live_version(directory)
            if live != name:
                shutil.rmtree(version, ignore_errors=True)
            raise
        _remove_versions(directory, keep={name, previous})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, block_rows: int = DEFAULT_BLOCK_ROWS):
        """Reads the live version of an index folder (or a flat, older-layout one); the
        embeddings are memory-mapped, not read into memory."""
        directory = Path(directory)
        for attempt in range(_LOAD_ATTEMPTS):
            version = _live_version(directory) if directory.is_dir() else None
            if version is None:
                raise SearchError(
                    f"{directory}: not a kattr index ({CURRENT_FILE} and {INDEX_FILE} are "
                    "missing); build one with kattr-index MANIFEST --run RUN_DIR --output "
                    "INDEX_DIR"
                )
            folder = directory if version == _FLAT else directory / version
            try:
                return cls._load_version(folder, block_rows)
            except FileNotFoundError as error:
                # A save may have swapped CURRENT and removed this version meanwhile.
                if attempt + 1 < _LOAD_ATTEMPTS and _live_version(directory) != version:
                    continue
                missing = Path(error.filename).name if error.filename else "a file"
                raise SearchError(
                    f"{folder}: the index is incomplete ({missing} is missing); rebuild it with "
                    "kattr-index"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _load_version(cls, folder: Path, block_rows: int):
        from kattr._schema import from_data

        index_file = folder / INDEX_FILE
        document = json.loads(index_file.read_text())
        if document.get("format") != INDEX_FORMAT:
            raise SearchError(
                f"{index_file}: format {document.get('format')!r} is not supported (expected "
                f"{INDEX_FORMAT}); rebuild the index with this kattr"
            )
        embeddings = np.load(folder / EMBEDDINGS_FILE, mmap_mode="r")
        appearance = np.load(folder / APPEARANCE_FILE, mmap_mode="r")
        metadata_file = folder / METADATA_FILE
        if not metadata_file.is_file():
            raise FileNotFoundError(2, "No such file", str(metadata_file))
        metadata = read_manifest(metadata_file)
        taxonomy = from_data(TaxonomyConfig, document["taxonomy"], "taxonomy")
        return cls(embeddings, appearance, metadata, taxonomy, document["source"], block_rows)


def _live_version(directory: Path) -> str | None:
    """The version folder `CURRENT` names, `_FLAT` for a flat (older) index, None for none."""
    pointer = directory / CURRENT_FILE
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return _FLAT if (directory / INDEX_FILE).is_file() else None
    if not _VERSION_NAME.fullmatch(name):
        raise SearchError(
            f"{pointer}: names {name!r}, not a version folder (v-...); the index is damaged: "
            "rebuild it with kattr-index"
        )
    return name


def _only_versions(directory: Path) -> bool:
    """True for a folder holding only version folders, `CURRENT` and temporary files a crashed
    save left (an index without a live version): saving there is safe."""
    return all(
        (entry.is_dir() and _VERSION_NAME.fullmatch(entry.name))
        or entry.name == CURRENT_FILE or entry.name.startswith(f".{CURRENT_FILE}.")
        for entry in directory.iterdir()
    )


def _remove_versions(directory: Path, keep: set[str | None]) -> None:
    """Deletes, best effort, every version folder (and flat-layout file) not in `keep`."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name not in keep and entry.is_dir() and _VERSION_NAME.fullmatch(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
    if _FLAT not in keep:
        for name in _FLAT_FILES:
            with contextlib.suppress(OSError):
                (directory / name).unlink(missing_ok=True)


def _normalised(vectors: np.ndarray, width: int, name: str) -> np.ndarray:
    vectors = np.atleast_2d(np.asarray(vectors, np.float32))
    if vectors.shape[1] != width:
        raise SearchError(
            f"{name} must have width {width} (the index's). Received: shape {vectors.shape}"
        )
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def build_index(frame: pd.DataFrame, scores: CatalogScores) -> SimilarityIndex:
    """An index of the scored rows of `frame` (rows whose image failed are left out)."""
    if len(frame) != len(scores):
        raise ValueError(
            f"scores must have one row per manifest row ({len(frame)}). Received: {len(scores)}"
        )
    clash = [c for c in (ROW_COLUMN, PATH_COLUMN) if c in frame.columns]
    if clash:
        raise SearchError(f"manifest: columns {clash} are reserved for the index; rename them")
    if scores.appearance is None:
        raise ValueError("scores need appearance descriptors: score_files(..., appearance=True)")
    kept = np.flatnonzero(scores.scored)
    metadata = frame.reset_index(drop=True).iloc[kept].copy()
    metadata[ROW_COLUMN] = (kept + 1).astype(str)
    metadata[PATH_COLUMN] = [scores.paths[i] for i in kept]
    return SimilarityIndex(
        np.ascontiguousarray(scores.embeddings[kept], np.float32),
        np.ascontiguousarray(scores.appearance[kept], np.float32), metadata, scores.taxonomy,
        scores.source,
    )


def index_manifest(
    manifest: str | os.PathLike,
    output_dir: str | os.PathLike,
    scorer: Scorer,
    image_root: str | os.PathLike | None = None,
    image_column: str = "image",
    batch_size: int = 32,
) -> tuple[SimilarityIndex, list[ImageFailure]]:
    """Scores a manifest's images and writes their index to `output_dir` (atomically)."""
    frame, paths = manifest_images(manifest, image_root, image_column)
    paths = [str(Path(path).resolve()) for path in paths]
    scores = scorer.score_files(paths, batch_size=batch_size, appearance=True)
    if not scores.scored.any():
        raise SearchError(f"{manifest}: no image could be scored; nothing to index")
    index = build_index(frame, scores)
    index.save(output_dir)
    return index, scores.failures


def parse_where(items: Sequence[str]) -> dict[str, list[str]]:
    """``["colour=red", "colour=blue", "category=dress"]`` -> ``{"colour": ["red", "blue"],
    "category": ["dress"]}`` (values of one column are alternatives)."""
    where: dict[str, list[str]] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip() or not value.strip():
            raise SearchError(f"--where {item!r}: expected COLUMN=VALUE, e.g. colour=red")
        where.setdefault(column.strip(), []).append(value.strip())
    return where


def similar(
    index: SimilarityIndex,
    scorer: Scorer,
    image: str | os.PathLike,
    k: int = 10,
    same: Sequence[str] = (),
    where: Mapping[str, str | Sequence[str]] | None = None,
    appearance_weight: float = DEFAULT_APPEARANCE_WEIGHT,
) -> pd.DataFrame:
    """The `k` indexed products that look most like `image`.

    Args:
        index: the index.
        scorer: the source that built it (or one with the same model).
        image: the query image file.
        k: neighbours to return.
        same: columns (or attributes) whose value the neighbours must share with the query:
            from the query's own index row when the image is indexed, else (attributes only)
            the model's prediction for it.
        where: column -> value(s) the neighbours must hold, e.g. ``{"colour": "red"}``.
        appearance_weight: share of the appearance descriptor in the similarity (module
            docstring); 0 searches with the model embedding alone.

    Returns:
        A frame with `rank`, `distance`, `row` (1-based manifest row), `image` and the
        manifest columns of each neighbour, nearest first.
    """
    import tensorflow as tf

    image = Path(image)
    try:
        data = image.read_bytes()
    except OSError as error:
        raise SearchError(f"{image}: cannot read the query image ({error.strerror})") from None
    try:
        scores, embedding = scorer.predict([data])
        appearance = appearance_descriptor(data)
    except (ImageDecodeError, tf.errors.InvalidArgumentError) as error:
        raise SearchError(f"{image}: cannot decode the query image ({error})") from None
    if embedding.shape[1] != index.width:
        raise SearchError(
            f"the source's embeddings have width {embedding.shape[1]}, the index's "
            f"{index.width}: query with the source that built it ({index.source})"
        )
    filters = {column: list(values) if not isinstance(values, str) else [values]
               for column, values in (where or {}).items()}
    for column in same:
        filters.setdefault(column, []).extend(_query_values(index, scorer, image, scores, column))
        if not filters[column]:
            raise SearchError(f"--same {column}: the query has no value in {column!r}")
    mask = index.mask(filters) if filters else None
    positions, distances = index.search(embedding, appearance, k, mask, appearance_weight)
    rows = index.metadata.iloc[positions[0]]
    result = pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1),
        "distance": np.round(distances[0].astype(np.float64), 6),
        "row": rows[ROW_COLUMN].astype(int).to_numpy(),
        "image": rows[PATH_COLUMN].to_numpy(),
    })
    others = rows.drop(columns=[ROW_COLUMN, PATH_COLUMN]).reset_index(drop=True)
    others = others.drop(columns=[c for c in others.columns if c in result.columns])
    return pd.concat([result, others], axis=1)


def _query_values(index, scorer, image: Path, scores, column: str) -> list[str]:
    """The query's value(s) in `column`: its index row's cell, else the model's prediction."""
    paths = index.metadata[PATH_COLUMN].to_numpy()
    hits = np.flatnonzero(paths == str(image.resolve()))
    if len(hits):
        return sorted(index.cell_values(column)[hits[0]])
    attribute = index._attributes.get(column)
    if attribute is None:
        raise SearchError(
            f"--same {column}: the query image is not in the index and {column!r} is not an "
            f"attribute the model predicts; filter with --where {column}=VALUE instead"
        )
    if attribute is index.taxonomy.category_attribute:
        # The product type decides the category as applicability does: the top value, even
        # below its threshold (`kattr.postprocess.category_indices`).
        category, _ = category_indices(index.taxonomy, scores, [None])
        return [attribute.values[category[0]]]
    decisions = predicted_decisions(
        scores[attribute.name], scorer.thresholds[attribute.name], attribute
    )[0]
    return [attribute.values[j] for j in np.flatnonzero(decisions)]
