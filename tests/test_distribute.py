"""Distributed training: the masked loss gives the same update on 1 or N replicas."""

import json
import subprocess
import sys

import pytest

# Logical devices must be set before TensorFlow initialises them: hence a fresh interpreter.
ONE_STEP_ON_TWO_REPLICAS = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from kattr.losses import MaskedBinaryCrossentropy

normaliser = sys.argv[1]
rng = np.random.default_rng(0)
features = rng.normal(size=(8, 5)).astype("float32")
targets = {
    "colour": np.eye(3, dtype="float32")[rng.integers(0, 3, 8)],
    "occasion": (rng.random((8, 2)) > 0.5).astype("float32"),
}
targets["colour"][[1, 6]] = -1.0  # missing rows, one on each replica
kernel = rng.normal(size=(5, 5)).astype("float32")

def one_step(strategy):
    with strategy.scope():
        inputs = keras.Input((5,))
        logits = keras.layers.Dense(5, name="dense")(inputs)
        model = keras.Model(inputs, {"colour": logits[:, :3], "occasion": logits[:, 3:]})
        model.get_layer("dense").set_weights([kernel, np.zeros(5, "float32")])
        model.compile(
            optimizer=keras.optimizers.SGD(1.0),
            loss={name: MaskedBinaryCrossentropy(normaliser=normaliser, from_logits=True)
                  for name in targets},
            loss_weights={"colour": 1.0, "occasion": 0.5},
        )
    data = tf.data.Dataset.from_tensor_slices((features, targets)).batch(8)
    history = model.fit(data, epochs=1, verbose=0)
    return model.get_layer("dense").get_weights()[0] - kernel, history.history["loss"][0]

devices = [d.name for d in tf.config.list_logical_devices("CPU")]
single, single_loss = one_step(tf.distribute.OneDeviceStrategy(devices[0]))
mirrored, mirrored_loss = one_step(tf.distribute.MirroredStrategy(devices))
print(json.dumps({
    "replicas": len(devices),
    "update_norm": float(np.abs(single).max()),
    "max_difference": float(np.abs(single - mirrored).max()),
    "losses": [single_loss, mirrored_loss],
}))
"""


def test_mirrored_update_equals_the_single_device_update():
    completed = subprocess.run(
        [sys.executable, "-c", ONE_STEP_ON_TWO_REPLICAS, "batch"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["update_norm"] > 1e-2  # the step moved the weights
    # Unscaled, each replica's loss counted as the global one: an update twice as large.
    assert result["max_difference"] < 1e-5
    assert result["losses"][1] == pytest.approx(result["losses"][0], rel=1e-5)
