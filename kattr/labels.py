"""Manifests and label encoding: the three label states of the design notes.

For every row and attribute the target row is
- labelled: multi-hot over the attribute's values;
- not applicable (category not in `applies_to`): all zeros;
- missing (applies, cell blank): all -1 (masked out of the loss).

Two rules complete them:
- the product-type output (`taxonomy.category_output`) is encoded from the category cell: one
  value where the category is known, missing where it is blank or unknown (and an unknown
  category follows `on_unknown` like any unknown value);
- an exclusive attribute's cell holding several distinct values after merging (``red|blue``
  for an exclusive colour) is contradictory and encoded as missing, so the model is never
  trained on a multi-hot target for a one-value attribute; `EncodedLabels.conflicting` lists
  those cells and `kattr-data validate` reports them.

Unknown values under `on_unknown: missing` never drop a known value of the same cell and never
make a negative that the cell does not vouch for. A multi-label cell ``casual|weird`` (``weird``
outside the taxonomy) encodes as casual = 1 and every other value missing (-1): ``weird`` may be
a misspelt ``party``, so no value can be called a negative. The loss masks such values one by
one; metrics leave the partly known row out (it has no full truth). A cell with only unknown
values, or an exclusive attribute's cell with one (``red|mauve`` is either contradictory or a
synonym: no value is vouched), is missing as a whole.

Label cells are parsed in one place, `cell_values`, which every reader of a label cell uses
(training targets here, curation, the catalog applications, the search index's filters): a
blank cell (None, NaN, pandas NA, empty or whitespace-only) holds no value; otherwise the cell
is split on the taxonomy separator (multi-valued columns only; a category cell is one value),
each part is folded with `canonical` (case and runs of whitespace), empty parts are skipped,
synonyms are replaced through the column's merge map, and repeated values are dropped keeping
the first occurrence: ``" Casual | PARTY|casual "`` reads as ``["casual", "party"]``.

Example:
    >>> config = load_config("demo/config.yaml")
    >>> frame = read_manifest(config.manifest_path)
    >>> encoded = encode_labels(frame, config.taxonomy)
    >>> encoded.targets["colour"].shape  # (rows, number of colour values)
    (600, 6)
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kattr._atomic import atomic_path
from kattr.config import AttributeConfig, Config, TaxonomyConfig, canonical

__all__ = [
    "MISSING",
    "EncodedLabels",
    "LabelError",
    "category_of",
    "cell_values",
    "column_parsing",
    "column_values",
    "decode_targets",
    "encode_labels",
    "image_paths",
    "is_blank",
    "read_manifest",
    "write_manifest",
]

MISSING = -1.0
_MAX_ROWS_IN_MESSAGE = 10


class LabelError(ValueError):
    """A manifest that does not follow the taxonomy; the message names rows and columns."""


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Reads a CSV or Parquet manifest with every cell as a string (blank cells stay NaN)."""
    path = Path(path)
    if not path.exists():
        raise LabelError(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        return (
            frame.astype(object)
            .where(frame.notna(), None)
            .map(lambda v: v if v is None else str(v))
        )
    if suffix in (".csv", ".txt", ".tsv"):
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            sep="\t" if suffix == ".tsv" else ",",
        )
    raise LabelError(f"{path}: unsupported manifest type {suffix!r}; expected .csv or .parquet")


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Writes a CSV or Parquet manifest atomically (see `kattr._atomic.atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def is_blank(value) -> bool:
    """True for None, NaN (any float type), pandas' NA/NaT and empty or whitespace-only cells."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return True
    return not str(value).strip()


def cell_values(
    cell,
    separator: str | None = None,
    merge: Mapping[str, str] | None = None,
    merged: Counter | None = None,
) -> list[str]:
    """The distinct canonical values of a label cell, in cell order; [] for a blank cell.

    The one parser of label cells (see the module docstring): `encode_labels`, curation, the
    catalog applications and the search index all read cells through it.

    Args:
        cell: the manifest cell (any type; blank per `is_blank`).
        separator: the taxonomy separator of a multi-valued column; None reads the whole cell
            as one value (the category column).
        merge: synonym -> canonical value, applied after folding (`AttributeConfig.merge`,
            `TaxonomyConfig.category_merge`); keys and values are canonical.
        merged: when given, counts ``(synonym, target)`` once per part the merge replaced.

    Example:
        >>> cell_values(" Casual | evening|casual ", "|", {"evening": "party"})
        ['casual', 'party']
    """
    if is_blank(cell):
        return []
    parts = [cell] if separator is None else str(cell).split(separator)
    values: list[str] = []
    for part in parts:
        value = canonical(part)
        if not value:
            continue
        target = merge.get(value, value) if merge else value
        if merged is not None and target != value:
            merged[(value, target)] += 1
        if target not in values:
            values.append(target)
    return values


def column_parsing(
    taxonomy: TaxonomyConfig, column: str
) -> tuple[str | None, Mapping[str, str]]:
    """``(separator, merge)`` with which `cell_values` reads the cells of a manifest column.

    The category column holds one value merged by `category_merge`; an attribute's source
    column holds separator-separated values merged by its `merge` (the first attribute reading
    the column); any other column holds one canonical value.
    """
    if column == taxonomy.category_column:
        return None, taxonomy.category_merge
    for attribute in taxonomy.attributes:
        if attribute.source_column == column:
            return taxonomy.separator, attribute.merge
    return None, {}


def column_values(cell, column: str, taxonomy: TaxonomyConfig) -> list[str]:
    """The canonical values of a cell of `column` (see `column_parsing`), as training reads it.

    Example:
        >>> column_values("Casual|party", "occasion", taxonomy)
        ['casual', 'party']
    """
    return cell_values(cell, *column_parsing(taxonomy, column))


def image_paths(frame: pd.DataFrame, config: Config) -> list[str]:
    """Absolute image paths of a manifest (relative ones resolved against `data.image_root`)."""
    column = config.data.image_column
    if column not in frame.columns:
        raise LabelError(f"manifest has no image column {column!r}; columns: {list(frame.columns)}")
    root = config.image_root
    return [str(Path(p) if os.path.isabs(str(p)) else root / str(p)) for p in frame[column]]


@dataclass
class EncodedLabels:
    """Targets per attribute for the rows that were kept.

    Attributes:
        targets: attribute name -> float32 array [rows, values] (1/0, or -1 where missing;
            a multi-label row with an unknown value is 1 on its known values, -1 elsewhere).
        rows: positions (0-based) in the input frame of the kept rows.
        dropped_rows: positions of rows dropped by `on_unknown: drop`.
        unknown: every unknown cell as (row position, column, canonical value).
        unknown_as_missing: number of cells turned (wholly or partly) to missing by
            `on_unknown: missing`.
        conflicting: every exclusive cell with several values, encoded as missing, as
            (row position, column, the cell's canonical values joined by the separator).
    """

    targets: dict[str, np.ndarray]
    rows: np.ndarray
    dropped_rows: list[int] = field(default_factory=list)
    unknown: list[tuple[int, str, str]] = field(default_factory=list)
    unknown_as_missing: int = 0
    conflicting: list[tuple[int, str, str]] = field(default_factory=list)


def category_of(cell, taxonomy: TaxonomyConfig) -> str | None:
    """The canonical (merged) category of a cell; None where blank."""
    values = cell_values(cell, None, taxonomy.category_merge)
    return values[0] if values else None


def _row_label(index: int) -> str:
    # Row numbers in messages are 1-based data rows, as a spreadsheet shows them after the header.
    return str(index + 1)


def encode_labels(
    frame: pd.DataFrame, taxonomy: TaxonomyConfig, on_unknown: str = "error"
) -> EncodedLabels:
    """Encodes manifest cells into targets following the three label states.

    Args:
        frame: the manifest (one row per image).
        taxonomy: categories and attributes.
        on_unknown: `error` raises naming rows and column; `missing` makes the cell missing
            except for a multi-label cell's known values (see the module docstring); `drop`
            removes the row.

    Raises:
        LabelError: a missing column, or unknown values with `on_unknown: error`.

    Example:
        >>> encode_labels(frame, taxonomy).targets["product_type"][0]  # category "dress"
        array([0., 0., 0., 1., 0.], dtype=float32)
    """
    if on_unknown not in ("error", "missing", "drop"):
        raise ValueError(f"on_unknown must be error, missing or drop. Received: {on_unknown!r}")
    needed = [taxonomy.category_column] + [a.source_column for a in taxonomy.attributes]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise LabelError(
            f"manifest lacks column(s) {absent}; the taxonomy expects {needed}, "
            f"the manifest has {list(frame.columns)}"
        )
    n = len(frame)
    categories = [category_of(c, taxonomy) for c in frame[taxonomy.category_column]]
    known_categories = set(taxonomy.categories)
    unknown: dict[str, list[tuple[int, str]]] = {}
    drop = np.zeros(n, dtype=bool)
    for i, category in enumerate(categories):
        if category is not None and category not in known_categories:
            unknown.setdefault(taxonomy.category_column, []).append((i, category))
            categories[i] = None
            drop[i] |= on_unknown == "drop"

    targets = {}
    unknown_as_missing = 0
    conflicting = []
    for attribute in taxonomy.attributes:
        index = {v: j for j, v in enumerate(attribute.values)}
        if taxonomy.is_category_output(attribute):
            targets[attribute.name] = _category_target(categories, index)
            if on_unknown == "missing":
                unknown_as_missing += len(unknown.get(taxonomy.category_column, []))
            continue
        applies = None if attribute.applies_to is None else set(attribute.applies_to)
        target = np.full((n, len(attribute.values)), MISSING, dtype=np.float32)
        for i, cell in enumerate(frame[attribute.source_column]):
            category = categories[i]
            if applies is not None and category is not None and category not in applies:
                target[i] = 0.0  # not applicable: every value is a negative
                continue
            if is_blank(cell):
                continue  # missing, or category unknown so applicability is unknown
            values = cell_values(cell, taxonomy.separator, attribute.merge)
            bad = [v for v in values if v not in index]
            if bad:
                unknown.setdefault(attribute.source_column, []).append((i, bad[0]))
                drop[i] |= on_unknown == "drop"
                unknown_as_missing += on_unknown == "missing"
                known = [v for v in values if v in index]
                if on_unknown == "missing" and known and not attribute.exclusive:
                    # The unknown value may be any other value: only the known ones are vouched.
                    target[i, [index[v] for v in known]] = 1.0
                continue
            if not values:
                continue
            if attribute.exclusive and len(values) > 1:
                conflicting.append((i, attribute.source_column, taxonomy.separator.join(values)))
                continue  # contradictory: missing
            target[i] = 0.0
            target[i, [index[v] for v in values]] = 1.0
        targets[attribute.name] = target

    if unknown and on_unknown == "error":
        lines = []
        for column, cells in unknown.items():
            shown = ", ".join(
                f"row {_row_label(i)}: {v!r}" for i, v in cells[:_MAX_ROWS_IN_MESSAGE]
            )
            more = (
                f" (and {len(cells) - _MAX_ROWS_IN_MESSAGE} more)"
                if len(cells) > _MAX_ROWS_IN_MESSAGE
                else ""
            )
            lines.append(f"column {column!r}: {len(cells)} unknown value(s): {shown}{more}")
        raise LabelError(
            "values not in the taxonomy (set data.on_unknown to missing or drop to continue):\n  "
            + "\n  ".join(lines)
        )
    keep = np.flatnonzero(~drop)
    return EncodedLabels(
        targets={name: t[keep] for name, t in targets.items()},
        rows=keep,
        dropped_rows=np.flatnonzero(drop).tolist(),
        unknown=sorted((i, column, v) for column, cells in unknown.items() for i, v in cells),
        unknown_as_missing=int(unknown_as_missing),
        conflicting=conflicting,
    )


def _category_target(categories: list[str | None], index: dict[str, int]) -> np.ndarray:
    """One-hot product-type targets from the rows' known categories; -1 where None."""
    target = np.full((len(categories), len(index)), MISSING, dtype=np.float32)
    for i, category in enumerate(categories):
        if category is not None:
            target[i] = 0.0
            target[i, index[category]] = 1.0
    return target


def decode_targets(target_row: np.ndarray, attribute: AttributeConfig) -> list[str] | None:
    """The value names of one target row; None where the label is missing."""
    if np.all(target_row == MISSING):
        return None
    return [attribute.values[j] for j in np.flatnonzero(target_row == 1.0)]
