"""A manifest loaded against its config: image paths, encoded targets and split assignment.

Example:
    >>> catalog = load_catalog(load_config("demo/config.yaml"))
    >>> train = catalog.subset("train")
    >>> len(train), sorted(train.targets)
    (420, ['colour', 'occasion', 'pattern', 'sleeve'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kattr.config import Config, TaxonomyConfig
from kattr.labels import LabelError, category_of, encode_labels, image_paths, read_manifest

__all__ = ["SPLITS", "Catalog", "assign_splits", "load_catalog"]

SPLITS = ("train", "val", "test")


@dataclass
class Catalog:
    """Rows of a manifest that survived encoding, aligned with their targets.

    Attributes:
        frame: the manifest rows (original index kept).
        paths: absolute image path per row.
        targets: attribute -> float32 [rows, values] (1/0, -1 = missing).
        splits: `train`/`val`/`test` per row.
        dropped: rows removed by `on_unknown: drop`.
    """

    frame: pd.DataFrame
    paths: list[str]
    targets: dict[str, np.ndarray]
    splits: np.ndarray
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, rows: np.ndarray) -> Catalog:
        """The given row positions (repeats allowed), in that order."""
        return Catalog(
            frame=self.frame.iloc[rows],
            paths=[self.paths[i] for i in rows],
            targets={name: t[rows] for name, t in self.targets.items()},
            splits=self.splits[rows],
        )

    def subset(self, split: str | None) -> Catalog:
        """The rows of one split (None: every row)."""
        return self if split is None else self.take(np.flatnonzero(self.splits == split))

    def categories(self, taxonomy: TaxonomyConfig) -> list[str | None]:
        """Canonical category of each row (None where blank)."""
        return [category_of(cell, taxonomy) for cell in self.frame[taxonomy.category_column]]


def assign_splits(frame: pd.DataFrame, config: Config) -> np.ndarray:
    """The split of each row: from the split column when present, else a seeded random draw."""
    split = config.data.splits
    if split.column in frame.columns:
        values = frame[split.column].fillna("").astype(str).str.strip().str.lower().to_numpy()
        bad = np.flatnonzero(~np.isin(values, SPLITS))
        if len(bad):
            rows = ", ".join(f"row {i + 1}: {values[i]!r}" for i in bad[:10])
            raise LabelError(
                f"column {split.column!r}: expected one of {list(SPLITS)} in every row; {rows}"
            )
        return values
    draw = np.random.default_rng(split.seed).random(len(frame))
    return np.where(
        draw < split.val_fraction,
        "val",
        np.where(draw < split.val_fraction + split.test_fraction, "test", "train"),
    )


def load_catalog(config: Config, manifest: str | None = None) -> Catalog:
    """Reads and encodes the config's manifest (or another one following its taxonomy)."""
    frame = read_manifest(manifest or config.manifest_path)
    encoded = encode_labels(frame, config.taxonomy, config.data.on_unknown)
    kept = frame.iloc[encoded.rows]
    paths = image_paths(kept, config)
    return Catalog(
        frame=kept,
        paths=paths,
        targets=encoded.targets,
        splits=assign_splits(kept, config),
        dropped=len(encoded.dropped_rows),
    )
