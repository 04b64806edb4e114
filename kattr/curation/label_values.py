"""Canonical label cells: case/whitespace folded, taxonomy merges applied, unknowns handled.

Every label cell becomes the canonical form `encode_labels` reads back unchanged: the values
`kattr.labels.cell_values` reads from it (the one label-cell parser: folded with `canonical`,
synonyms replaced by `merge` / `category_merge`, repeated values dropped) joined with the
taxonomy separator, blank cells None. Values not
in the taxonomy follow `data.on_unknown`: `error` raises, `missing` blanks the cell, `drop`
marks the row for removal. Under `missing` a multi-label cell that also holds known values is
kept as it is (``casual|weird``): `encode_labels` reads it as casual = 1 and the other values
missing, where blanking would lose casual and dropping weird would make false negatives.

Example:
    >>> cleaned = clean_labels(frame, config.taxonomy, on_unknown="missing")
    >>> cleaned.frame.loc[0, "colour"]  # "  Navy   BLUE" with merge {navy blue: blue}
    'blue'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from kattr.config import TaxonomyConfig
from kattr.labels import cell_values, column_parsing, encode_labels

__all__ = ["CleanedLabels", "MergeCount", "clean_labels", "label_columns"]


@dataclass
class MergeCount:
    """Cells of `column` where the taxonomy merged `source` into `target`."""

    column: str
    source: str
    target: str
    cells: int


@dataclass
class CleanedLabels:
    """The canonical manifest and what canonicalisation changed.

    Attributes:
        frame: copy of the manifest with canonical label cells.
        merges: merge counts, largest first.
        unknown: every unknown cell as (row position, column, canonical value).
        dropped_rows: row positions with an unknown value under `on_unknown: drop`.
    """

    frame: pd.DataFrame
    merges: list[MergeCount] = field(default_factory=list)
    unknown: list[tuple[int, str, str]] = field(default_factory=list)
    dropped_rows: list[int] = field(default_factory=list)


def label_columns(taxonomy: TaxonomyConfig) -> list[str]:
    """The category column then every attribute's source column, each once."""
    columns = [taxonomy.category_column] + [a.source_column for a in taxonomy.attributes]
    return list(dict.fromkeys(columns))


def _canonical_cell(cell, column: str, taxonomy: TaxonomyConfig, merged: Counter) -> str | None:
    values = cell_values(cell, *column_parsing(taxonomy, column), merged=merged)
    return taxonomy.separator.join(values) or None


def _partly_known_columns(taxonomy: TaxonomyConfig) -> dict[str, set[str]]:
    """Column -> values of the multi-label attributes (a cell there may be partly known)."""
    return {
        a.source_column: set(a.values)
        for a in taxonomy.declared_attributes
        if not a.exclusive and a.source_column != taxonomy.category_column
    }


def _has_known_value(cell, values: set[str], taxonomy: TaxonomyConfig) -> bool:
    return any(value in values for value in cell_values(cell, taxonomy.separator))


def clean_labels(frame: pd.DataFrame, taxonomy: TaxonomyConfig, on_unknown: str) -> CleanedLabels:
    """Canonicalises every label cell and applies `on_unknown` to values outside the taxonomy.

    Args:
        frame: the manifest as read by `read_manifest` (not modified).
        taxonomy: categories, attributes and merges.
        on_unknown: `error`, `missing` or `drop` (see `DataConfig.on_unknown`).

    Raises:
        LabelError: a label column is absent, or unknown values with `on_unknown: error`.
    """
    cleaned = frame.copy()
    merges = []
    encode_labels(frame.iloc[:0], taxonomy)  # raises naming any absent column
    for column in label_columns(taxonomy):
        merged: Counter = Counter()
        cleaned[column] = pd.Series(
            [_canonical_cell(c, column, taxonomy, merged) for c in frame[column]],
            index=frame.index, dtype=object,
        )
        merges += [MergeCount(column, s, t, n) for (s, t), n in merged.items()]
    merges.sort(key=lambda m: (-m.cells, m.column, m.source))
    unknown = encode_labels(cleaned, taxonomy, on_unknown="missing").unknown
    if unknown and on_unknown == "error":
        encode_labels(cleaned, taxonomy, on_unknown="error")
    dropped_rows: list[int] = []
    if on_unknown == "missing":
        partly_known = _partly_known_columns(taxonomy)
        for row, column, _ in unknown:
            cell = cleaned.iat[row, cleaned.columns.get_loc(column)]
            if column in partly_known and _has_known_value(cell, partly_known[column], taxonomy):
                continue  # encodes as its known values, the others missing (kattr.labels)
            cleaned.iat[row, cleaned.columns.get_loc(column)] = None
    elif on_unknown == "drop":
        dropped_rows = sorted({row for row, _, _ in unknown})
    return CleanedLabels(cleaned, merges, unknown, dropped_rows)
