"""Helpers shared by the catalog applications: manifest cells, applicability and decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kattr.config import AttributeConfig, TaxonomyConfig
from kattr.labels import LabelError, category_of, cell_values, is_blank
from kattr.postprocess import applicability_table, category_indices, decide

__all__ = [
    "applicability_categories",
    "applicable_rows",
    "blank_cells",
    "catalog_sets",
    "check_columns",
    "check_min_score",
    "check_rows",
    "predicted_decisions",
]


def check_columns(frame: pd.DataFrame, taxonomy: TaxonomyConfig, name: str = "manifest") -> None:
    """Raises `LabelError` naming the columns the taxonomy needs and the manifest lacks."""
    needed = [taxonomy.category_column] + [a.source_column for a in taxonomy.attributes]
    absent = [column for column in needed if column not in frame.columns]
    if absent:
        raise LabelError(
            f"{name}: lacks column(s) {absent}; the model's taxonomy expects {needed}. "
            f"Received columns: {list(frame.columns)}"
        )


def check_rows(frame: pd.DataFrame, scores) -> None:
    if len(frame) != len(scores):
        raise ValueError(
            f"scores must have one row per manifest row ({len(frame)}). Received: {len(scores)}"
        )


def check_min_score(min_score: float | None) -> None:
    if min_score is not None and not 0.0 < min_score <= 1.0:
        raise ValueError(f"min_score must be in (0, 1]. Received: min_score={min_score}")


def applicability_categories(
    frame: pd.DataFrame, taxonomy: TaxonomyConfig, scores=None
) -> tuple[np.ndarray, np.ndarray]:
    """The category each row's applicability follows: the catalog's where the row has a known
    one, else the predicted product type (`kattr.postprocess.category_indices`).

    Args:
        frame: the manifest.
        taxonomy: the model's taxonomy.
        scores: the rows' `CatalogScores`, or None to use the catalog's categories only.

    Returns:
        int [rows] indices into `taxonomy.categories` (-1 where unknown: a blank or unknown
        category and no product-type prediction) and str [rows] sources (`catalog`, `model`,
        or "").

    Example:
        >>> index, source = applicability_categories(frame, taxonomy, scores)
        >>> source.tolist()  # row 1 has a blank category cell
        ['catalog', 'model']
    """
    categories = [category_of(cell, taxonomy) for cell in frame[taxonomy.category_column]]
    return category_indices(taxonomy, None if scores is None else scores.scores, categories)


def applicable_rows(
    frame: pd.DataFrame,
    taxonomy: TaxonomyConfig,
    attribute: AttributeConfig,
    category_index: np.ndarray | None = None,
) -> np.ndarray:
    """bool [rows]: the attribute applies to the row's category.

    An attribute without `applies_to` applies everywhere; one with it does not apply where the
    category is unknown (its applicability cannot be told).

    Args:
        frame: the manifest.
        taxonomy: the model's taxonomy.
        attribute: the attribute.
        category_index: from `applicability_categories` (the catalog's category, else the
            predicted product type); None uses the catalog's categories only.
    """
    if attribute.applies_to is None:
        return np.ones(len(frame), dtype=bool)
    if category_index is None:
        category_index, _ = applicability_categories(frame, taxonomy)
    # Index -1 (unknown) reads the table's last entry, False.
    return applicability_table(taxonomy, attribute)[np.asarray(category_index)]


def blank_cells(frame: pd.DataFrame, attribute: AttributeConfig) -> np.ndarray:
    """bool [rows]: the attribute's cell is blank."""
    return np.array([is_blank(cell) for cell in frame[attribute.source_column]], dtype=bool)


def catalog_sets(
    frame: pd.DataFrame, attribute: AttributeConfig, separator: str
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot catalog values [rows, values] and a bool [rows] of cells that hold only known
    values (blank cells and cells with a value outside the taxonomy are False); cells are read
    with `kattr.labels.cell_values`, as training reads them."""
    index = {value: j for j, value in enumerate(attribute.values)}
    sets = np.zeros((len(frame), len(attribute.values)), dtype=bool)
    known = np.zeros(len(frame), dtype=bool)
    for i, cell in enumerate(frame[attribute.source_column]):
        values = cell_values(cell, separator, attribute.merge)
        if values and all(value in index for value in values):
            sets[i, [index[value] for value in values]] = True
            known[i] = True
    return sets, known


def predicted_decisions(
    scores: np.ndarray,
    thresholds: np.ndarray,
    attribute: AttributeConfig,
    min_score: float | None = None,
) -> np.ndarray:
    """bool [rows, values]: `kattr.postprocess.decide` (calibrated thresholds, exclusivity),
    then only values scoring at least `min_score` when given. NaN rows decide nothing."""
    scores = np.nan_to_num(np.asarray(scores, np.float32), nan=-1.0)
    decisions = decide(scores, thresholds, attribute.exclusive)
    if min_score is not None:
        decisions &= scores >= min_score
    return decisions
