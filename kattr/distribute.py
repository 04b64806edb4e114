"""Choice of the tf.distribute strategy for training.

- `TF_CONFIG` set: MultiWorkerMirroredStrategy (one process per worker).
- Several GPUs visible: MirroredStrategy.
- Otherwise the default (single-device) strategy.

Example:
    >>> with select_strategy().scope():
    ...     model = build_model(config)
"""

from __future__ import annotations

import os

import tensorflow as tf

__all__ = ["select_strategy"]


def select_strategy() -> tf.distribute.Strategy:
    """The strategy that fits the machine and environment (see module docstring)."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
