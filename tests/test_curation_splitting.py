"""Tests of the stratified train/val/test split and of its share differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kattr.config import config_from_dict
from kattr.curation import SPLITS, CurationError
from kattr.curation.splitting import (
    LabelIndicators,
    label_indicators,
    share_differences,
    stratified_split,
)


def _indicators(rows: int = 600, seed: int = 0) -> LabelIndicators:
    """A long-tailed multi-label matrix: 12 values, frequencies from 50% down to 1%."""
    rng = np.random.default_rng(seed)
    rates = np.geomspace(0.5, 0.01, 12)
    matrix = rng.random((rows, len(rates))) < rates
    return LabelIndicators(matrix, [("attribute", f"v{i}") for i in range(len(rates))])


def test_same_seed_same_split_and_other_seed_differs():
    matrix = _indicators().matrix
    first = stratified_split(matrix, 0.15, 0.15, seed=7)
    assert np.array_equal(first, stratified_split(matrix, 0.15, 0.15, seed=7))
    assert not np.array_equal(first, stratified_split(matrix, 0.15, 0.15, seed=8))


def test_split_sizes_follow_the_fractions():
    splits = stratified_split(_indicators().matrix, 0.2, 0.1, seed=0)
    counts = pd.Series(splits).value_counts().to_dict()
    assert set(counts) == set(SPLITS)
    assert abs(counts["val"] - 120) <= 6 and abs(counts["test"] - 60) <= 6


def test_zero_fraction_leaves_a_split_empty():
    splits = stratified_split(_indicators().matrix, 0.0, 0.25, seed=0)
    assert set(splits) == {"train", "test"}


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.2), (0.5, 0.5)])
def test_bad_fractions_are_rejected(val, test):
    with pytest.raises(CurationError, match="data.splits"):
        stratified_split(_indicators().matrix, val, test, seed=0)


def test_stratification_keeps_value_shares_better_than_a_random_split():
    worst_stratified, worst_random = [], []
    for seed in range(3):
        indicators = _indicators(seed=seed)
        stratified = stratified_split(indicators.matrix, 0.15, 0.15, seed=seed)
        shuffled = np.random.default_rng(seed).permutation(stratified)  # same sizes, random
        worst_stratified.append(share_differences(indicators, stratified)["test"]["max_difference"])
        worst_random.append(share_differences(indicators, shuffled)["test"]["max_difference"])
    assert np.mean(worst_stratified) < 0.5 * np.mean(worst_random)


def test_every_value_with_enough_examples_reaches_every_split():
    indicators = _indicators()
    splits = stratified_split(indicators.matrix, 0.15, 0.15, seed=0)
    enough = indicators.matrix.sum(axis=0) >= 20
    for split in SPLITS:
        assert indicators.matrix[splits == split][:, enough].any(axis=0).all()


def test_share_differences_are_exact_on_a_hand_made_case():
    indicators = LabelIndicators(
        np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool), [("a", "x"), ("a", "y")]
    )
    splits = np.array(["train", "train", "train", "test"], dtype=object)
    differences = share_differences(indicators, splits)
    # Whole: x 1/2, y 1/2. Train: x 2/3, y 1/3. Test: x 0, y 1.
    assert differences["train"]["max_difference"] == pytest.approx(1 / 6)
    assert differences["test"]["max_difference"] == pytest.approx(0.5)
    assert differences["val"]["rows"] == 0 and differences["val"]["max_difference"] == 0.0


def test_label_indicators_cover_categories_and_attribute_values():
    taxonomy = config_from_dict({
        "data": {},
        "taxonomy": {
            "category_column": "category", "categories": ["top", "shoe"],
            "attributes": [{"name": "occasion", "values": ["casual", "party"], "exclusive": False},
                           {"name": "pattern", "values": ["solid"], "applies_to": ["top"]}],
        },
    }).taxonomy
    frame = pd.DataFrame({"category": ["top", "shoe", None],
                          "occasion": ["casual|party", None, "party"],
                          "pattern": ["solid", "solid", None]})
    indicators = label_indicators(frame, taxonomy)
    assert indicators.names == [("category", "top"), ("category", "shoe"), ("occasion", "casual"),
                                ("occasion", "party"), ("pattern", "solid")]
    assert indicators.matrix.astype(int).tolist() == [
        [1, 0, 1, 1, 1],
        [0, 1, 0, 0, 0],  # the shoe's pattern is not applicable: no positive
        [0, 0, 0, 1, 0],
    ]
