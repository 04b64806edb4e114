"""Callbacks of a training run: resuming the best model and early stopping from history.csv."""

import csv
import math

import keras
import numpy as np
import pytest

from kattr.callbacks import BestModelCheckpoint, ResumableEarlyStopping, resume_state

MONITOR = "val_average_accuracy"


def write_history(path, values):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss", MONITOR])
        writer.writerows([epoch, 0.1, value] for epoch, value in values)


def test_resume_state_counts_like_early_stopping(tmp_path):
    history = tmp_path / "history.csv"
    assert resume_state(history, MONITOR) == (-math.inf, 0)  # no file yet
    # Epoch 2 was logged twice (an interrupted session): the last row counts. NaN counts as a
    # non-improving epoch, "NA" (not logged) does not count.
    write_history(history, [(0, 0.4), (1, 0.6), (2, 0.9), (2, 0.5), (3, "nan"), (4, "NA")])
    assert resume_state(history, MONITOR) == (0.6, 2)


def replay(callbacks, model, values, first):
    """Feeds logged values to callbacks as fit() would from epoch `first`; the stopping epoch."""
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch, value in enumerate(values, start=first):
        for callback in callbacks:
            callback.on_epoch_end(epoch, {MONITOR: value})
        if getattr(model, "stop_training", False):
            return epoch
    return None


def tiny_models():
    inputs = keras.Input((3,))
    logits = keras.layers.Dense(2, name="dense")(inputs)
    serving = keras.Model(inputs, {"colour": keras.layers.Activation("sigmoid", name="colour")(
        logits)})
    training = keras.Model(inputs, {"colour": logits})
    return serving, training


def test_checkpoint_saves_the_serving_model_only_above_the_initial_best(tmp_path):
    serving, training = tiny_models()
    path = tmp_path / "model.keras"
    checkpoint = BestModelCheckpoint(path, serving, MONITOR, initial_best=0.8)
    replay([checkpoint], training, [0.5, 0.8, float("nan")], first=3)
    assert not path.exists()  # nothing beat the resumed best
    replay([checkpoint], training, [0.85], first=6)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("colour").get_config()["activation"] == "sigmoid"
    features = np.ones((1, 3), "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(features)["colour"]),
        keras.ops.convert_to_numpy(serving(features)["colour"]), rtol=1e-6,
    )
    assert not list(tmp_path.glob(".*"))  # no partial file left behind
    with pytest.raises(ValueError, match="Received: filepath="):
        BestModelCheckpoint(tmp_path / "model.h5", serving, MONITOR)


def test_early_stopping_continues_the_wait_of_the_first_session():
    _, training = tiny_models()
    # best 0.6 two epochs ago, patience 3: one more epoch without improvement stops.
    stopping = ResumableEarlyStopping(MONITOR, patience=3, initial_best=0.6, initial_wait=2)
    assert replay([stopping], training, [0.5, 0.55], first=4) == 4
    training.stop_training = False
    fresh = ResumableEarlyStopping(MONITOR, patience=3)
    assert replay([fresh], training, [0.5, 0.55, 0.4, 0.3, 0.2], first=0) == 4  # 3 after 0.55
