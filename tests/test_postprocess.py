import numpy as np
import pytest
import tensorflow as tf

from kattr.config import TaxonomyConfig, config_from_dict
from kattr.postprocess import (
    applicability_table,
    category_indices,
    decide,
    decide_attributes,
    labels_from_decisions,
    mask_not_applicable,
    thresholds_for,
)

SCORES = np.array([[0.7, 0.9, 0.1], [0.2, 0.3, 0.4], [0.6, 0.55, 0.1]], "float32")


def taxonomy() -> TaxonomyConfig:
    return config_from_dict({
        "data": {},
        "taxonomy": {
            "category_column": "category",
            "categories": ["top"],
            "attributes": [
                {"name": "colour", "values": ["red", "blue", "green"]},
                {"name": "occasion", "values": ["casual", "party"], "exclusive": False},
            ],
        },
    }).taxonomy


def test_exclusive_keeps_the_best_value_only_if_it_clears_the_threshold():
    decisions = decide(SCORES, 0.5, exclusive=True)
    assert isinstance(decisions, np.ndarray)
    np.testing.assert_array_equal(
        decisions, [[False, True, False], [False, False, False], [True, False, False]]
    )


def test_multi_label_keeps_every_value_above_the_threshold():
    decisions = decide(SCORES, 0.5, exclusive=False)
    np.testing.assert_array_equal(
        decisions, [[True, True, False], [False, False, False], [True, True, False]]
    )


def test_exclusive_with_per_value_thresholds_checks_the_best_values_own_threshold():
    # The best value (0.9) misses its 0.95 threshold: no label, although 0.7 clears 0.5.
    decisions = decide(SCORES[:1], np.array([0.5, 0.95, 0.5]), exclusive=True)
    np.testing.assert_array_equal(decisions, [[False, False, False]])
    np.testing.assert_array_equal(
        decide(SCORES[:1], np.array([0.5, 0.95, 0.5]), exclusive=False), [[True, False, False]]
    )


def test_threshold_is_inclusive():
    np.testing.assert_array_equal(decide(np.array([[0.5, 0.25]]), 0.5, True), [[True, False]])


@pytest.mark.parametrize("exclusive", [True, False])
def test_same_decisions_inside_a_tf_function(exclusive):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def serve(scores):
        return decide(scores, tf.constant([0.5, 0.5, 0.35]), exclusive)

    graph_decisions = serve(tf.constant(SCORES))
    assert isinstance(graph_decisions, tf.Tensor)
    np.testing.assert_array_equal(
        graph_decisions.numpy(), decide(SCORES, np.array([0.5, 0.5, 0.35]), exclusive)
    )


def test_thresholds_for_broadcasts_and_defaults():
    thresholds = thresholds_for(taxonomy(), {"colour": 0.3})
    np.testing.assert_allclose(thresholds["colour"], [0.3, 0.3, 0.3])
    np.testing.assert_allclose(thresholds["occasion"], [0.5, 0.5])
    per_value = thresholds_for(taxonomy(), {"occasion": [0.2, 0.7]}, default=0.6)
    np.testing.assert_allclose(per_value["occasion"], [0.2, 0.7])
    np.testing.assert_allclose(per_value["colour"], [0.6, 0.6, 0.6])
    assert per_value["colour"].dtype == np.float32


def test_thresholds_for_rejects_unknown_attributes_and_wrong_lengths():
    with pytest.raises(ValueError, match="size"):
        thresholds_for(taxonomy(), {"size": 0.5})
    with pytest.raises(ValueError, match="thresholds.occasion"):
        thresholds_for(taxonomy(), {"occasion": [0.5, 0.5, 0.5]})


def test_decide_attributes_and_labels():
    scores = {"colour": SCORES, "occasion": SCORES[:, :2], "product_type": np.ones((3, 1))}
    decisions = decide_attributes(scores, taxonomy(), {"occasion": 0.58})
    assert labels_from_decisions(decisions["colour"], ["red", "blue", "green"]) == [
        ["blue"], [], ["red"]
    ]
    assert labels_from_decisions(decisions["occasion"], ["casual", "party"]) == [
        ["casual", "party"], [], ["casual"]
    ]


def sleeve_taxonomy() -> TaxonomyConfig:
    return config_from_dict({
        "data": {},
        "taxonomy": {
            "category_column": "category",
            "categories": ["tshirt", "shoe"],
            "attributes": [
                {"name": "colour", "values": ["red", "blue"]},
                {"name": "sleeve", "values": ["short", "long"], "applies_to": ["tshirt"]},
            ],
        },
    }).taxonomy


# Four rows: predicted product type tshirt, shoe, shoe, and an unscored image (NaN).
SLEEVE_SCORES = {
    "colour": np.array([[0.9, 0.1]] * 4, "float32"),
    "sleeve": np.array([[0.8, 0.1]] * 4, "float32"),
    "product_type": np.array([[0.9, 0.1], [0.3, 0.4], [0.1, 0.2], [np.nan, np.nan]], "float32"),
}


def test_product_type_is_an_exclusive_output_over_the_categories():
    product_type = sleeve_taxonomy().attributes[-1]
    assert product_type.name == "product_type"
    assert product_type.values == ["tshirt", "shoe"]
    assert product_type.exclusive and product_type.applies_to is None


def test_category_indices_prefer_the_catalog_then_the_predicted_product_type():
    index, source = category_indices(
        sleeve_taxonomy(), SLEEVE_SCORES, ["shoe", None, "kurta", None]
    )
    # Row 2's product type (0.4) misses the threshold: the highest score still decides.
    assert index.tolist() == [1, 1, 1, -1]
    assert source.tolist() == ["catalog", "model", "model", ""]


def test_applicability_follows_the_catalog_category_when_the_row_has_one():
    decisions = decide_attributes(SLEEVE_SCORES, sleeve_taxonomy(), categories=["shoe"] * 4)
    assert not decisions["sleeve"].any()  # the catalog says shoe, although predicted tshirt
    assert decisions["colour"][:, 0].all()


def test_applicability_follows_the_predicted_product_type_without_a_catalog_category():
    for categories in (None, [None] * 4):
        decisions = decide_attributes(SLEEVE_SCORES, sleeve_taxonomy(), categories=categories)
        # tshirt predicted on row 0 only; the unscored row 3 has no category: not applicable.
        assert decisions["sleeve"].any(axis=1).tolist() == [True, False, False, False]
        assert decisions["product_type"].any(axis=1).tolist() == [True, False, False, False]


def test_mask_not_applicable_is_the_same_inside_a_tf_function():
    table = applicability_table(sleeve_taxonomy(), sleeve_taxonomy().attributes[1])
    assert table.tolist() == [True, False, False]
    decisions = np.ones((3, 2), bool)
    index = np.array([0, 1, -1])

    specs = [tf.TensorSpec([None, 2], tf.bool), tf.TensorSpec([None], tf.int64)]

    @tf.function(input_signature=specs)
    def serve(decisions, index):
        return mask_not_applicable(decisions, index, table)

    expected = [[True, True], [False, False], [False, False]]
    np.testing.assert_array_equal(mask_not_applicable(decisions, index, table), expected)
    np.testing.assert_array_equal(serve(decisions, index).numpy(), expected)
