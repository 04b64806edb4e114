"""Keras callbacks of a kattr training run.

Example:
    >>> callbacks = [MeanAttributeMetric(["colour", "pattern"]), SkippedImagesLogger(counters)]
"""

from __future__ import annotations

import keras
import numpy as np

from kattr.pipeline import SkipCounter

__all__ = ["MeanAttributeMetric", "SkippedImagesLogger"]


class MeanAttributeMetric(keras.callbacks.Callback):
    """Adds the mean over attributes of a per-attribute metric to the epoch logs.

    With `metric="average_accuracy"` it writes `average_accuracy` and `val_average_accuracy`,
    the quantity the best-model checkpoint and early stopping follow. Must come before them.

    Args:
        attributes: attribute (output) names.
        metric: per-attribute metric name as logged (`<attr>_<metric>`).
    """

    def __init__(self, attributes: list[str], metric: str = "average_accuracy"):
        super().__init__()
        self.attributes = list(attributes)
        self.metric = metric

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            values = [logs.get(f"{prefix}{a}_{self.metric}") for a in self.attributes]
            values = [float(v) for v in values if v is not None]
            if values:
                logs[f"{prefix}{self.metric}"] = float(np.mean(values))


class SkippedImagesLogger(keras.callbacks.Callback):
    """Reports the unreadable images each pipeline skipped during the epoch.

    Args:
        counters: split name -> the `SkipCounter` of its pipeline.
    """

    def __init__(self, counters: dict[str, SkipCounter]):
        super().__init__()
        self.counters = counters
        self.last: dict[str, int] = {}

    def on_epoch_begin(self, epoch, logs=None):
        for counter in self.counters.values():
            counter.reset()

    def on_epoch_end(self, epoch, logs=None):
        self.last = {name: counter.skipped for name, counter in self.counters.items()}
        skipped = {name: n for name, n in self.last.items() if n}
        if skipped:
            details = ", ".join(f"{name}: {n}" for name, n in skipped.items())
            print(f"\nepoch {epoch + 1}: skipped unreadable images ({details}); "
                  "run kattr-data validate to list them")
        if logs is not None:
            logs["skipped_images"] = float(sum(self.last.values()))
