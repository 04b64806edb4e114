import math

import keras
import numpy as np
import pytest

from kattr.config import config_from_dict
from kattr.losses import build_losses
from kattr.metrics import (
    AverageAccuracy,
    MaskedF1,
    average_accuracy,
    average_precision,
    build_metrics,
    evaluation_report,
    report_to_markdown,
)


def tiny_config():
    return config_from_dict({
        "data": {},
        "taxonomy": {
            "category_column": "category",
            "categories": ["top", "shoe"],
            # Hand-made targets and scores: no product-type output.
            "category_output": None,
            "attributes": [
                {"name": "colour", "values": ["red", "blue", "green"]},
                {"name": "occasion", "values": ["casual", "party", "work"], "exclusive": False},
                {"name": "logo", "values": ["yes"]},
            ],
        },
        "train": {"threshold": 0.4},
    })


# Multi-label rows: {casual, party} vs {casual}; {work} vs {party, work}; not applicable with
# nothing predicted (both empty); not applicable with {casual} predicted; missing.
OCCASION_TRUE = np.array(
    [[1, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [-1, -1, -1]], "float32"
)
OCCASION_SCORES = np.array(
    [[0.9, 0.2, 0.1], [0.1, 0.6, 0.7], [0.2, 0.3, 0.1], [0.8, 0.1, 0.1], [0.9, 0.9, 0.9]],
    "float32",
)
OCCASION_EQ2 = (1 / 2 + 1 / 2 + 1 + 0) / 4


def test_average_accuracy_by_hand():
    decisions = OCCASION_SCORES >= 0.5
    assert average_accuracy(OCCASION_TRUE, decisions) == pytest.approx(OCCASION_EQ2)


def test_average_accuracy_both_empty_is_one_and_no_labelled_rows_is_nan():
    assert average_accuracy(np.zeros((2, 3)), np.zeros((2, 3), bool)) == 1.0
    assert math.isnan(average_accuracy(-np.ones((2, 3)), np.ones((2, 3), bool)))


def test_partly_known_rows_are_left_out_of_the_metrics():
    """A row with unvouched values ([1, -1, -1]) has no full truth: eq. (2) leaves it out."""
    targets = np.vstack([OCCASION_TRUE, [[1, -1, -1]]])
    decisions = np.vstack([OCCASION_SCORES >= 0.5, [[True, True, True]]])
    assert average_accuracy(targets, decisions) == pytest.approx(OCCASION_EQ2)
    metric = AverageAccuracy(threshold=0.5, exclusive=False)
    metric.update_state(targets, np.vstack([OCCASION_SCORES, [[0.9, 0.9, 0.9]]]))
    assert float(metric.result()) == pytest.approx(OCCASION_EQ2, rel=1e-5)


def test_streaming_average_accuracy_matches_eq2_over_batches():
    metric = AverageAccuracy(exclusive=False)
    metric.update_state(OCCASION_TRUE[:2], OCCASION_SCORES[:2])
    metric.update_state(OCCASION_TRUE[2:], OCCASION_SCORES[2:])
    assert float(metric.result()) == pytest.approx(OCCASION_EQ2, rel=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_streaming_exclusive_average_accuracy_is_accuracy():
    truth = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], "float32")
    scores = np.array([[0.6, 0.7, 0.1], [0.2, 0.9, 0.8], [0.1, 0.2, 0.3], [0.9, 0.1, 0.1]])
    metric = AverageAccuracy(threshold=0.5, exclusive=True)
    metric.update_state(truth, scores)
    # Row 1 picks blue (wrong), row 2 blue (right), row 3 nothing clears 0.5 (wrong).
    assert float(metric.result()) == pytest.approx(1 / 3)


def test_streaming_micro_f1_by_hand():
    metric = MaskedF1(threshold=0.5, exclusive=False)
    metric.update_state(OCCASION_TRUE, OCCASION_SCORES)
    # TP: casual (row 1), work (row 2); FP: party (row 2), casual (row 4); FN: party (row 1).
    assert float(metric.result()) == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))


def test_metric_config_round_trip():
    metric = AverageAccuracy(threshold=[0.3, 0.6], exclusive=False, name="colour_aa")
    clone = AverageAccuracy.from_config(metric.get_config())
    assert (clone.threshold, clone.exclusive, clone.name) == ([0.3, 0.6], False, "colour_aa")


def test_build_metrics_gives_fresh_metrics_per_attribute():
    metrics = build_metrics(tiny_config())
    assert sorted(metrics) == ["colour", "logo", "occasion"]
    assert [m.name for m in metrics["colour"]] == ["average_accuracy", "f1"]
    assert metrics["colour"][0] is not metrics["occasion"][0]
    assert metrics["occasion"][0].exclusive is False
    assert metrics["colour"][1].threshold == 0.4


def report_inputs():
    targets = {
        "colour": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [-1, -1, -1], [0, 0, 1]], "f"),
        "occasion": OCCASION_TRUE,
        "logo": np.array([[1], [0], [1], [-1], [0]], "f"),
    }
    scores = {
        "colour": np.array(
            [[0.9, 0.1, 0.1], [0.6, 0.7, 0.1], [0.1, 0.1, 0.2], [0.9, 0.1, 0.1], [0.8, 0.1, 0.3]]
        ),
        "occasion": OCCASION_SCORES,
        "logo": np.array([[0.8], [0.2], [0.3], [0.9], [0.7]]),
    }
    return targets, scores


def report():
    return evaluation_report(*report_inputs(), tiny_config().taxonomy, {"logo": 0.5})


def test_evaluation_report_attribute_rows():
    rows = {row["attribute"]: row for row in report()["attributes"]}
    occasion = rows["occasion"]
    assert occasion["average_accuracy"] == pytest.approx(OCCASION_EQ2)
    assert (occasion["support"], occasion["missing"], occasion["not_applicable"]) == (4, 1, 2)
    assert occasion["precision_micro"] == pytest.approx(2 / 4)
    assert occasion["recall_micro"] == pytest.approx(2 / 3)
    # Per value (casual, party, work): F1 = 2/3, 0, 1.
    assert occasion["f1_macro"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    colour = rows["colour"]
    # Exclusive: red (right), blue (right), nothing on the not-applicable row (right), red (wrong).
    assert colour["average_accuracy"] == pytest.approx(3 / 4)
    assert colour["precision_micro"] == pytest.approx(2 / 3)
    assert colour["threshold"] == 0.5
    logo = rows["logo"]  # a one-value attribute: TP, TN, FN, FP
    assert logo["average_accuracy"] == pytest.approx(2 / 4)
    assert (logo["precision_micro"], logo["recall_micro"]) == (0.5, 0.5)
    assert report()["mean_average_accuracy"] == pytest.approx((OCCASION_EQ2 + 3 / 4 + 2 / 4) / 3)


def test_average_precision_ranks_labelled_pairs_and_ignores_missing_rows():
    targets = np.array([[1, 0], [0, 0], [-1, -1], [0, 1]])  # labelled, N/A, missing, labelled
    perfect = np.array([[0.9, 0.2], [0.1, 0.3], [0.99, 0.99], [0.4, 0.8]])
    assert average_precision(targets, perfect) == pytest.approx(1.0)  # the missing row is out
    # Positives ranked 1st and 3rd (0.8 > 0.6 > 0.5): AP = (1/1 + 2/3) / 2.
    mixed = np.array([[0.5, 0.2], [0.1, 0.6], [0.99, 0.99], [0.4, 0.8]])
    assert average_precision(targets, mixed) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(targets, np.full((4, 2), 0.5)) == pytest.approx(2 / 6)  # base rate
    assert average_precision(np.array([[0, 0], [-1, -1]]), np.ones((2, 2))) is None
    rows = {row["attribute"]: row for row in report()["attributes"]}
    targets, scores = report_inputs()
    assert rows["occasion"]["average_precision"] == pytest.approx(
        average_precision(targets["occasion"], scores["occasion"]))


def test_evaluation_report_value_rows():
    values = {(row["attribute"], row["value"]): row for row in report()["values"]}
    casual = values[("occasion", "casual")]
    assert (casual["precision"], casual["recall"], casual["support"]) == (0.5, 1.0, 1)
    assert values[("occasion", "party")]["f1"] == 0.0
    assert values[("colour", "green")]["support"] == 1
    assert values[("colour", "green")]["recall"] == 0.0


def test_report_markdown_has_both_tables():
    text = report_to_markdown(report())
    assert "| attribute | average_accuracy |" in text
    assert "| occasion | casual | 0.500 | 1.000 | 0.667 | 1 |" in text
    assert text.count("\n| logo |") == 2  # one attribute row, one value row


def test_fit_history_has_validation_metrics_per_attribute():
    config = tiny_config()
    inputs = keras.Input((4,))
    outputs = {
        attribute.name: keras.layers.Dense(
            len(attribute.values), activation="sigmoid", name=attribute.name
        )(inputs)
        for attribute in config.taxonomy.attributes
    }
    model = keras.Model(inputs, outputs)
    losses, loss_weights = build_losses(config)
    model.compile(optimizer="adam", loss=losses, loss_weights=loss_weights,
                  metrics=build_metrics(config))
    features = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    targets = report_inputs()[0]
    history = model.fit(features, targets, validation_data=(features, targets), batch_size=5,
                        epochs=1, verbose=0)
    for name in ("colour", "occasion", "logo"):
        for metric in ("loss", "average_accuracy", "f1"):
            assert f"val_{name}_{metric}" in history.history
    scores = {name: keras.ops.convert_to_numpy(value) for name, value in model(features).items()}
    offline = evaluation_report(targets, scores, config.taxonomy, {"colour": 0.4, "logo": 0.4,
                                                                   "occasion": 0.4})
    for row in offline["attributes"]:
        streamed = history.history[f"val_{row['attribute']}_average_accuracy"][0]
        assert streamed == pytest.approx(row["average_accuracy"], abs=1e-6)


def test_metrics_on_logits_equal_the_metrics_on_scores():
    logits = np.log(OCCASION_SCORES / (1 - OCCASION_SCORES))
    for metric_class in (AverageAccuracy, MaskedF1):
        on_scores = metric_class(threshold=0.4, exclusive=False)
        on_logits = metric_class(threshold=0.4, exclusive=False, from_logits=True)
        on_scores.update_state(OCCASION_TRUE, OCCASION_SCORES)
        on_logits.update_state(OCCASION_TRUE, logits)
        assert float(on_logits.result()) == pytest.approx(float(on_scores.result()), abs=1e-6)
    clone = MaskedF1.from_config(on_logits.get_config())
    assert clone.from_logits is True
    metrics = build_metrics(tiny_config(), from_logits=True)
    assert [m.name for m in metrics["colour"]] == ["average_accuracy", "f1"]
    assert all(m.from_logits for ms in metrics.values() for m in ms)
    aa = AverageAccuracy(threshold=0.4, exclusive=False, from_logits=True)
    aa.update_state(OCCASION_TRUE, logits)
    assert float(aa.result()) == pytest.approx(OCCASION_EQ2)
