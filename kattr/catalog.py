"""A manifest loaded against its config: image paths, encoded targets and split assignment.

Example:
    >>> catalog = load_catalog(load_config("demo/config.yaml"))
    >>> train = catalog.subset("train")
    >>> len(train), sorted(train.targets)
    (420, ['colour', 'occasion', 'pattern', 'sleeve'])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kattr.config import Config, TaxonomyConfig
from kattr.labels import LabelError, category_of, encode_labels, image_paths, read_manifest

__all__ = ["SPLITS", "Catalog", "assign_splits", "load_catalog", "split_keys", "split_of_key"]

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


def split_of_key(key: str, val_fraction: float, test_fraction: float, seed: int) -> str:
    """The split of one key: a pure function of `(seed, key)`, reproducible anywhere.

    The rule, for other code to reproduce exactly:
    ``u = int(sha256(f"{seed}/{key}").hexdigest()[:16], 16) / 2**64``; `val` when
    ``u < val_fraction``, `test` when ``u < val_fraction + test_fraction``, else `train`.

    Args:
        key: the row's key (image path as written, or the `splits.key_column` cell).
        val_fraction: share of keys assigned to `val`.
        test_fraction: share of keys assigned to `test`.
        seed: `splits.seed`.

    Example:
        >>> split_of_key("images/0001.jpg", 0.15, 0.15, seed=0) in SPLITS
        True
    """
    digest = hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()
    u = int(digest[:16], 16) / 2**64
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"


def _row_labels(frame: pd.DataFrame, positions: np.ndarray) -> list[str]:
    # 1-based manifest rows: the kept frame keeps the manifest's RangeIndex.
    if pd.api.types.is_integer_dtype(frame.index):
        return [str(frame.index[i] + 1) for i in positions]
    return [str(i + 1) for i in positions]


def split_keys(frame: pd.DataFrame, config: Config) -> list[str]:
    """The key of every row: `splits.key_column` when set, else `data.image_column`.

    Args:
        frame: manifest rows, every cell a string (as `read_manifest` returns them).
        config: the experiment config.

    Raises:
        LabelError: the key column is absent, or some rows have a blank key (rows named).

    Example:
        >>> split_keys(pd.DataFrame({"image": ["a.jpg", "b.jpg"]}), config)
        ['a.jpg', 'b.jpg']
    """
    setting = config.data.splits.key_column
    column = setting or config.data.image_column
    if column not in frame.columns:
        key = "data.splits.key_column" if setting else "data.image_column"
        raise LabelError(
            f"{key}: manifest has no column {column!r} to assign splits by; "
            f"columns: {list(frame.columns)}"
        )
    keys = ["" if pd.isna(cell) else str(cell) for cell in frame[column]]
    blank = np.flatnonzero([not key.strip() for key in keys])
    if len(blank):
        rows = ", ".join(_row_labels(frame, blank[:10]))
        more = f" (and {len(blank) - 10} more)" if len(blank) > 10 else ""
        raise LabelError(
            f"column {column!r}: blank split key in {len(blank)} row(s): {rows}{more}; every row "
            "needs a key to be assigned a split (fill it, or set data.splits.key_column)"
        )
    return keys


def assign_splits(frame: pd.DataFrame, config: Config) -> np.ndarray:
    """The split of each row: from the split column when present, else hashed from its key.

    A row's split depends on its key and `splits.seed` only (`split_of_key`), never on its
    position: adding or dropping rows moves no other row. Rows with the same key (duplicate
    images, or several images of one product with `key_column: id`) always share a split, so
    they never straddle train and test.

    Args:
        frame: manifest rows, every cell a string.
        config: the experiment config (`data.splits`, `data.image_column`).

    Returns:
        `train`/`val`/`test` per row, as a numpy array of strings.

    Raises:
        LabelError: an unexpected value in the split column, a missing key column or a blank key.

    Example:
        >>> assign_splits(read_manifest("labels.csv"), config)[:3]
        array(['train', 'val', 'train'], dtype='<U5')
    """
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
    keys = split_keys(frame, config)
    by_key = {
        key: split_of_key(key, split.val_fraction, split.test_fraction, split.seed)
        for key in set(keys)
    }
    return np.array([by_key[key] for key in keys], dtype="<U5")


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
