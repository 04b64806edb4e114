"""Train/val/test assignment stratified on the category and every attribute value.

Uses iterative stratification (Sechidis et al., 2011; `iterstrat`) over one indicator column
per category and per attribute value, so rare values are spread over the splits in proportion
before common ones. Rows are shuffled with the seed first, so the assignment is deterministic
for a seed and a manifest. Curation keeps one image per duplicate group, so a group can never
straddle two splits.

Example:
    >>> indicators = label_indicators(frame, config.taxonomy)
    >>> splits = stratified_split(indicators.matrix, val_fraction=0.15, test_fraction=0.15, seed=0)
    >>> share_differences(indicators, splits)["test"]["max_difference"]
    0.012
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import IterativeStratification

from kattr.config import TaxonomyConfig
from kattr.curation.errors import CurationError
from kattr.labels import encode_labels

__all__ = ["SPLITS", "LabelIndicators", "label_indicators", "share_differences", "stratified_split"]

SPLITS = ("train", "val", "test")


@dataclass
class LabelIndicators:
    """Positive labels as a boolean matrix.

    Attributes:
        matrix: bool [rows, columns]; one column per category and per attribute value.
        names: (attribute or category column, value) per column.
    """

    matrix: np.ndarray
    names: list[tuple[str, str]]


def label_indicators(frame: pd.DataFrame, taxonomy: TaxonomyConfig) -> LabelIndicators:
    """Indicator columns of a canonical manifest: categories, then attribute values.

    Missing and not-applicable labels are all-False rows of their attribute's columns.
    """
    category = frame[taxonomy.category_column].to_numpy()
    columns = [category == value for value in taxonomy.categories]
    names = [(taxonomy.category_column, value) for value in taxonomy.categories]
    targets = encode_labels(frame, taxonomy, on_unknown="missing").targets
    for attribute in taxonomy.declared_attributes:  # the product type repeats the categories
        positives = targets[attribute.name] == 1.0
        columns += list(positives.T)
        names += [(attribute.name, value) for value in attribute.values]
    matrix = np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0), dtype=bool)
    return LabelIndicators(matrix.astype(bool), names)


def stratified_split(
    matrix: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Assigns every row to `train`, `val` or `test`, stratified on the indicator columns.

    Args:
        matrix: bool [rows, columns] indicators (see `label_indicators`).
        val_fraction: share of rows for validation.
        test_fraction: share of rows for test.
        seed: seed of the shuffle and of the tie-breaking.

    Returns:
        Array of split names, one per row.
    """
    if not (val_fraction >= 0 and test_fraction >= 0 and val_fraction + test_fraction < 1):
        raise CurationError(
            "data.splits: expected val_fraction and test_fraction >= 0 with a sum below 1. "
            f"Received: val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    fractions = np.array([1 - val_fraction - test_fraction, val_fraction, test_fraction])
    used = np.flatnonzero(fractions > 0)
    rows = matrix.shape[0]
    random_state = np.random.RandomState(seed)
    order = random_state.permutation(rows)
    folds = IterativeStratification(
        labels=np.asarray(matrix, dtype=bool)[order], r=fractions[used], random_state=random_state
    )
    assignment = np.empty(rows, dtype=object)
    assignment[order] = np.asarray(SPLITS, dtype=object)[used[folds]]
    return assignment


def share_differences(indicators: LabelIndicators, splits: np.ndarray) -> dict[str, dict]:
    """How well each split keeps the value frequencies of the whole.

    For every attribute (and the category), a value's share is its positives over the rows
    labelled for that attribute; values absent from the whole are skipped. Per split this
    returns the rows, the largest and the mean absolute share difference to the whole, and the
    value with the largest difference.
    """
    attributes = [name for name, _ in indicators.names]
    result = {}
    for split in SPLITS:
        in_split = splits == split
        differences: list[tuple[float, str, str]] = []
        for attribute in dict.fromkeys(attributes):
            columns = [i for i, name in enumerate(attributes) if name == attribute]
            block = indicators.matrix[:, columns]
            labelled = block.any(axis=1)
            if not labelled[in_split].any():
                continue
            whole = block[labelled].mean(axis=0)
            part = block[labelled & in_split].mean(axis=0)
            differences += [
                (float(abs(p - w)), attribute, indicators.names[c][1])
                for p, w, c in zip(part, whole, columns, strict=True)
                if w > 0
            ]
        worst = max(differences, default=(0.0, "", ""))
        result[split] = {
            "rows": int(in_split.sum()),
            "max_difference": worst[0],
            "mean_difference": float(np.mean([d for d, _, _ in differences]))
            if differences else 0.0,
            "worst_attribute": worst[1],
            "worst_value": worst[2],
        }
    return result
