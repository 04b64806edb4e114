import numpy as np
import pytest
import tensorflow as tf

from kattr.config import TaxonomyConfig, config_from_dict
from kattr.postprocess import decide, decide_attributes, labels_from_decisions, thresholds_for

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
    scores = {"colour": SCORES, "occasion": SCORES[:, :2]}
    decisions = decide_attributes(scores, taxonomy(), {"occasion": 0.58})
    assert labels_from_decisions(decisions["colour"], ["red", "blue", "green"]) == [
        ["blue"], [], ["red"]
    ]
    assert labels_from_decisions(decisions["occasion"], ["casual", "party"]) == [
        ["casual", "party"], [], ["casual"]
    ]
