import keras
import numpy as np
import pytest
import tensorflow as tf

from kattr.config import config_from_dict
from kattr.losses import MaskedBinaryCrossentropy, balanced_positive_weights, build_losses

# Rows: labelled {value 0}, not applicable (all negatives), missing, labelled {value 1}.
Y_TRUE = np.array([[1, 0, 0], [0, 0, 0], [-1, -1, -1], [0, 1, 0]], "float32")
Y_PRED = np.array(
    [[0.9, 0.2, 0.1], [0.3, 0.6, 0.2], [0.5, 0.7, 0.1], [0.4, 0.8, 0.3]], "float32"
)


def bce(target, score):
    return -(target * np.log(score) + (1 - target) * np.log(1 - score))


def row_sums(y_true=Y_TRUE, y_pred=Y_PRED):
    return bce(y_true, y_pred).sum(axis=1)


def tiny_config(loss=None, weights=(1.0, 0.5)):
    return config_from_dict({
        "data": {},
        "taxonomy": {
            "category_column": "category",
            "categories": ["top"],
            # Hand-made targets and scores: no product-type output.
            "category_output": None,
            "attributes": [
                {"name": "colour", "values": ["red", "blue", "green"], "weight": weights[0]},
                {"name": "occasion", "values": ["casual", "party"], "exclusive": False,
                 "weight": weights[1]},
            ],
        },
        "train": {"loss": loss or {}},
    })


@pytest.mark.parametrize("normaliser, count", [("batch", 4), ("labelled", 3)])
def test_loss_is_eq1_with_the_chosen_normaliser(normaliser, count):
    loss = MaskedBinaryCrossentropy(normaliser=normaliser)
    expected = row_sums()[[0, 1, 3]].sum() / count
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-5)


def test_missing_rows_have_exactly_zero_gradient_and_no_effect():
    loss = MaskedBinaryCrossentropy()
    y_pred = tf.Variable(Y_PRED)
    with tf.GradientTape() as tape:
        value = loss(Y_TRUE, y_pred)
    gradient = tape.gradient(value, y_pred).numpy()
    assert np.all(gradient[2] == 0.0)
    assert np.all(gradient[[0, 1, 3]] != 0.0)
    moved = Y_PRED.copy()
    moved[2] = [0.01, 0.99, 0.5]
    assert float(loss(Y_TRUE, moved)) == float(value)


@pytest.mark.parametrize("from_logits", [False, True])
def test_missing_values_of_a_partly_known_row_have_zero_loss_and_gradient(from_logits):
    """A multi-label row with a known positive and unvouched values ([1, -1, -1]: `casual|weird`
    under `on_unknown: missing`) learns only from its known value."""
    loss = MaskedBinaryCrossentropy(normaliser="labelled", from_logits=from_logits)
    y_true = np.array([[1, -1, -1]], "float32")
    scores = np.array([[0.7, 0.2, 0.9]], "float32")
    y_pred = tf.Variable(logit(scores) if from_logits else scores)
    with tf.GradientTape() as tape:
        value = loss(y_true, y_pred)
    gradient = tape.gradient(value, y_pred).numpy()
    assert float(value) == pytest.approx(bce(1.0, 0.7), rel=1e-4)
    assert gradient[0, 0] != 0.0 and np.all(gradient[0, 1:] == 0.0)


def test_not_applicable_row_counts_every_value_as_negative():
    loss = MaskedBinaryCrossentropy(normaliser="labelled")
    value = float(loss(Y_TRUE[1:2], Y_PRED[1:2]))
    assert value == pytest.approx(-np.log(1 - Y_PRED[1]).sum(), rel=1e-5)
    y_pred = tf.Variable(Y_PRED[1:2])
    with tf.GradientTape() as tape:
        gradient = tape.gradient(loss(Y_TRUE[1:2], y_pred), y_pred)
    assert np.all(gradient.numpy() > 0)  # lowering every score lowers the loss


def test_batch_without_labelled_rows_gives_zero_loss():
    for normaliser in ("batch", "labelled"):
        loss = MaskedBinaryCrossentropy(normaliser=normaliser)
        assert float(loss(Y_TRUE[2:3], Y_PRED[2:3])) == 0.0


def test_missing_as_negative_ablation_keeps_missing_rows_as_negatives():
    loss = MaskedBinaryCrossentropy(missing_as_negative=True)
    as_negative = np.maximum(Y_TRUE, 0)
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(row_sums(as_negative).sum() / 4, rel=1e-5)


def test_focal_variant_down_weights_easy_values():
    gamma = 2.0
    loss = MaskedBinaryCrossentropy(focal_gamma=gamma)
    target = Y_TRUE[[0, 1, 3]]
    score = Y_PRED[[0, 1, 3]]
    probability_of_truth = np.where(target == 1, score, 1 - score)
    expected = ((1 - probability_of_truth) ** gamma * bce(target, score)).sum() / 4
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-4)


def test_label_smoothing_moves_known_targets_towards_one_half():
    loss = MaskedBinaryCrossentropy(label_smoothing=0.2)
    target = Y_TRUE[[0, 1, 3]]
    smoothed = np.where(target == 1, 0.9, 0.1)
    expected = bce(smoothed, Y_PRED[[0, 1, 3]]).sum() / 4  # the missing row still adds nothing
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-5)


SMOOTHED_TRUE = np.array([[1.0, 0.0], [-1.0, -1.0]], "float32")  # one known row, one missing


def smoothed_loss_and_gradient(focal_gamma: float) -> tuple[float, np.ndarray]:
    """The smoothed (0.1) loss on logits at the smoothed targets (missing row anywhere), and its
    gradient with respect to those logits."""
    at_target = float(logit(np.float32(0.95)))  # the smoothed positive, 1 - 0.1 / 2
    logits = tf.Variable([[at_target, -at_target], [4.0, -2.0]])
    loss = MaskedBinaryCrossentropy(focal_gamma=focal_gamma, label_smoothing=0.1, from_logits=True)
    with tf.GradientTape() as tape:
        value = loss(SMOOTHED_TRUE, logits)
    return float(value), tape.gradient(value, logits).numpy()


@pytest.mark.parametrize("focal_gamma", [0.0, 1.0])
def test_smoothed_loss_gives_missing_rows_zero_gradient(focal_gamma):
    _, gradient = smoothed_loss_and_gradient(focal_gamma)
    np.testing.assert_array_equal(gradient[1], 0.0)


def test_smoothed_bce_is_flat_at_the_smoothed_targets_and_costs_loss_beyond_them():
    # BCE only: the focal factor moves the smoothed loss's minimum beyond the smoothed target.
    value, gradient = smoothed_loss_and_gradient(focal_gamma=0.0)
    np.testing.assert_allclose(gradient[0], 0.0, atol=1e-6)
    beyond = MaskedBinaryCrossentropy(label_smoothing=0.1, from_logits=True)(
        SMOOTHED_TRUE, np.array([[6.0, -6.0], [0.0, 0.0]], "float32"))
    assert float(beyond) > value


def test_positive_weights_scale_only_positive_terms():
    weights = np.array([3.0, 2.0, 5.0], "float32")
    loss = MaskedBinaryCrossentropy(positive_weights=weights.tolist())
    target = Y_TRUE[[0, 1, 3]]
    score = Y_PRED[[0, 1, 3]]
    scale = np.where(target == 1, weights, 1.0)
    expected = (scale * bce(target, score)).sum() / 4
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-5)


def test_loss_config_round_trip():
    loss = MaskedBinaryCrossentropy("labelled", 1.5, [1.0, 2.0], True, label_smoothing=0.1,
                                    name="colour_loss")
    clone = MaskedBinaryCrossentropy.from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    assert clone.name == "colour_loss"


def test_invalid_loss_arguments():
    with pytest.raises(ValueError, match="normaliser"):
        MaskedBinaryCrossentropy(normaliser="rows")
    with pytest.raises(ValueError, match="focal_gamma"):
        MaskedBinaryCrossentropy(focal_gamma=-1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        MaskedBinaryCrossentropy(label_smoothing=1.0)


def test_compiled_total_is_the_weighted_sum_of_attribute_losses():
    config = tiny_config(loss={"normaliser": "labelled"})
    inputs = keras.Input((4,))
    outputs = {
        name: keras.layers.Dense(size, activation="sigmoid", name=name)(inputs)
        for name, size in (("colour", 3), ("occasion", 2))
    }
    model = keras.Model(inputs, outputs)
    losses, loss_weights = build_losses(config)
    assert loss_weights == {"colour": 1.0, "occasion": 0.5}
    model.compile(loss=losses, loss_weights=loss_weights)
    features = np.random.default_rng(0).normal(size=(4, 4)).astype("float32")
    targets = {"colour": Y_TRUE, "occasion": np.array([[1, 1], [-1, -1], [0, 0], [0, 1]], "f")}
    result = model.evaluate(features, targets, batch_size=4, verbose=0, return_dict=True)
    scores = {k: keras.ops.convert_to_numpy(v) for k, v in model(features).items()}
    colour = row_sums(Y_TRUE, scores["colour"])[[0, 1, 3]].sum() / 3
    occasion = row_sums(targets["occasion"], scores["occasion"])[[0, 2, 3]].sum() / 3
    assert result["colour_loss"] == pytest.approx(colour, rel=1e-4)
    assert result["loss"] == pytest.approx(colour + 0.5 * occasion, rel=1e-4)


def test_build_losses_follows_the_loss_config():
    weights = {"colour": np.array([1, 2, 3], "f"), "occasion": np.array([4, 5], "f")}
    config = tiny_config(loss={"focal_gamma": 2.0, "positive_weights": "balanced",
                               "missing_as_negative": True, "label_smoothing": 0.1})
    losses, _ = build_losses(config, weights)
    assert losses["colour"].label_smoothing == 0.1
    assert losses["occasion"].positive_weights == [4.0, 5.0]
    assert losses["colour"].focal_gamma == 2.0
    assert losses["colour"].missing_as_negative
    with pytest.raises(ValueError, match="balanced"):
        build_losses(config)
    with pytest.raises(ValueError, match="occasion"):
        build_losses(config, {**weights, "occasion": np.ones(3, "f")})
    with pytest.raises(ValueError, match="none"):
        build_losses(tiny_config(), weights)


def test_balanced_positive_weights_from_training_frequencies():
    target = np.array(
        [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [-1, -1, -1], [-1, -1, -1]], "float32"
    )
    weights = balanced_positive_weights({"colour": target}, cap=10.0)["colour"]
    # Four labelled rows (the not-applicable one is a negative of every value).
    np.testing.assert_allclose(weights, [2 / 2, 3 / 1, 10.0])
    capped = balanced_positive_weights({"colour": target}, cap=2.0)["colour"]
    np.testing.assert_allclose(capped, [1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="cap"):
        balanced_positive_weights({"colour": target}, cap=0.5)


def logit(score):
    return np.log(score / (1 - score)).astype("float32")


@pytest.mark.parametrize(
    "options",
    [{}, {"normaliser": "labelled"}, {"focal_gamma": 2.0}, {"positive_weights": [3.0, 2.0, 5.0]},
     {"focal_gamma": 1.0, "label_smoothing": 0.1}],
)
def test_logits_loss_agrees_with_the_score_loss_for_moderate_logits(options):
    on_scores = MaskedBinaryCrossentropy(**options)
    on_logits = MaskedBinaryCrossentropy(from_logits=True, **options)
    assert float(on_logits(Y_TRUE, logit(Y_PRED))) == pytest.approx(
        float(on_scores(Y_TRUE, Y_PRED)), rel=1e-5
    )


@pytest.mark.parametrize("focal_gamma", [0.0, 2.0])
def test_confidently_wrong_logit_gets_a_full_gradient(focal_gamma):
    # One positive predicted with logit -30 (score ~1e-13): d BCE / d logit = sigmoid - 1 = -1.
    y_true = np.array([[1.0, 0.0]], "float32")
    logits = tf.Variable([[-30.0, -3.0]])
    with tf.GradientTape() as tape:
        value = MaskedBinaryCrossentropy(focal_gamma=focal_gamma, from_logits=True)(
            y_true, logits
        )
    negative = np.log1p(np.exp(-3.0)) * (1 / (1 + np.exp(3.0))) ** focal_gamma
    assert float(value) == pytest.approx(30.0 + negative, rel=1e-5)
    assert tape.gradient(value, logits).numpy()[0, 0] == pytest.approx(-1.0, abs=1e-4)
    # The score loss through a sigmoid: Keras clips the score, the gradient vanishes.
    with tf.GradientTape() as tape:
        value = MaskedBinaryCrossentropy(focal_gamma=focal_gamma)(y_true, tf.sigmoid(logits))
    assert abs(tape.gradient(value, logits).numpy()[0, 0]) < 1e-6


def test_missing_rows_give_zero_loss_and_gradient_on_logits():
    loss = MaskedBinaryCrossentropy(from_logits=True, focal_gamma=1.0)
    logits = tf.Variable(logit(Y_PRED) * 5)  # confident logits too
    with tf.GradientTape() as tape:
        value = loss(Y_TRUE, logits)
    gradient = tape.gradient(value, logits).numpy()
    assert np.all(gradient[2] == 0.0) and np.all(gradient[[0, 1, 3]] != 0.0)
    assert float(loss(Y_TRUE[2:3], logits[2:3])) == 0.0


def test_from_logits_round_trips_through_the_config():
    loss = MaskedBinaryCrossentropy(from_logits=True, name="colour_loss")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.from_logits is True and clone.get_config() == loss.get_config()
    losses, _ = build_losses(tiny_config(), from_logits=True)
    assert all(loss.from_logits for loss in losses.values())
    assert not any(loss.from_logits for loss in build_losses(tiny_config())[0].values())
