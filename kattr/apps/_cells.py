"""Helpers shared by the catalog applications: manifest cells, applicability and decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kattr.config import AttributeConfig, TaxonomyConfig, canonical
from kattr.labels import LabelError, category_of, is_blank
from kattr.postprocess import decide

__all__ = [
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


def applicable_rows(
    frame: pd.DataFrame, taxonomy: TaxonomyConfig, attribute: AttributeConfig
) -> np.ndarray:
    """bool [rows]: the attribute applies to the row's category.

    An attribute without `applies_to` applies everywhere; one with it does not apply where the
    category is blank or unknown (its applicability cannot be told).
    """
    if attribute.applies_to is None:
        return np.ones(len(frame), dtype=bool)
    allowed = set(attribute.applies_to)
    categories = [category_of(cell, taxonomy) for cell in frame[taxonomy.category_column]]
    return np.array([category in allowed for category in categories], dtype=bool)


def blank_cells(frame: pd.DataFrame, attribute: AttributeConfig) -> np.ndarray:
    """bool [rows]: the attribute's cell is blank."""
    return np.array([is_blank(cell) for cell in frame[attribute.source_column]], dtype=bool)


def catalog_sets(
    frame: pd.DataFrame, attribute: AttributeConfig, separator: str
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot catalog values [rows, values] and a bool [rows] of cells that hold only known
    values (blank cells and cells with a value outside the taxonomy are False)."""
    index = {value: j for j, value in enumerate(attribute.values)}
    sets = np.zeros((len(frame), len(attribute.values)), dtype=bool)
    known = np.zeros(len(frame), dtype=bool)
    for i, cell in enumerate(frame[attribute.source_column]):
        if is_blank(cell):
            continue
        values = [canonical(part) for part in str(cell).split(separator)]
        values = [attribute.merge.get(value, value) for value in values if value]
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
