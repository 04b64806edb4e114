"""Imbalance handling: category cap and rare-value over-sampling, with their report."""

import numpy as np

from kattr.config import SamplingConfig, config_from_dict
from kattr.sampling import plan_sampling

TAXONOMY = config_from_dict({
    "data": {},
    "taxonomy": {
        "category_column": "category",
        "categories": ["shirt", "bag"],
        "category_output": None,  # hand-made targets: no product-type output
        "attributes": [{"name": "colour", "values": ["red", "blue", "teal"]}],
    },
}).taxonomy


def catalog():
    categories = np.array(["shirt"] * 90 + ["bag"] * 10, dtype=object)
    colour = np.zeros((100, 3), np.float32)
    colour[:60, 0] = 1  # red: common
    colour[60:97, 1] = 1  # blue
    colour[97:, 2] = 1  # teal: 3 rows, rare
    return categories, {"colour": colour}


def test_no_sampling_keeps_every_row_once():
    categories, targets = catalog()
    plan = plan_sampling(categories, targets, SamplingConfig(), TAXONOMY)
    assert plan.indices.tolist() == list(range(100))
    assert plan.report["rows_before"] == plan.report["rows_after"] == 100


def test_category_cap_downsamples_majority_only():
    categories, targets = catalog()
    plan = plan_sampling(categories, targets, SamplingConfig(category_cap=30), TAXONOMY, seed=1)
    kept = categories[plan.indices]
    assert (kept == "shirt").sum() == 30 and (kept == "bag").sum() == 10
    assert len(set(plan.indices.tolist())) == 40
    assert plan.report["categories_before"] == {"bag": 10, "shirt": 90}
    assert plan.report["categories_after"] == {"bag": 10, "shirt": 30}
    again = plan_sampling(categories, targets, SamplingConfig(category_cap=30), TAXONOMY, seed=1)
    np.testing.assert_array_equal(plan.indices, again.indices)


def test_rare_values_are_repeated_up_to_the_cap():
    categories, targets = catalog()
    config = SamplingConfig(oversample_below=12, oversample_max_repeats=3)
    plan = plan_sampling(categories, targets, config, TAXONOMY)
    counts = np.bincount(plan.indices, minlength=100)
    assert counts[97:].tolist() == [3, 3, 3]  # ceil(12 / 3) = 4, capped at 3 copies
    assert counts[:97].max() == 1
    assert plan.report["values_before"]["colour"]["teal"] == 3
    assert plan.report["values_after"]["colour"]["teal"] == 9
    assert plan.report["rows_oversampled"] == 3
