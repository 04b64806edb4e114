"""Keras callbacks of a kattr training run.

A resumed run (Keras `BackupAndRestore`) picks up where the interrupted one stopped: the
best-model checkpoint and early stopping start from the best value and patience count that
`history.csv` holds, instead of from scratch.

Example:
    >>> callbacks = [MeanAttributeMetric(["colour", "pattern"]), SkippedImagesLogger(counters)]
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import keras
import numpy as np

from kattr._atomic import atomic_path
from kattr.pipeline import SkipCounter

__all__ = [
    "BestModelCheckpoint",
    "MeanAttributeMetric",
    "ResumableEarlyStopping",
    "SkippedImagesLogger",
    "resume_state",
]


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


def resume_state(history: str | os.PathLike, monitor: str) -> tuple[float, int]:
    """`(best, wait)` of a maximised `monitor` over the epochs a `CSVLogger` file holds.

    `best` is the highest value so far (-inf if none), `wait` the epochs since it, counted as
    `keras.callbacks.EarlyStopping` counts them (a NaN epoch counts, a missing value does not).
    A repeated epoch keeps its last row.

    Example:
        >>> resume_state("runs/demo/history.csv", "val_average_accuracy")
        (0.82, 1)
    """
    path = Path(history)
    rows = {}
    if path.exists():
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                rows[row.get("epoch")] = row.get(monitor)
    best, wait = -math.inf, 0
    for text in rows.values():
        try:
            value = float(text)
        except (TypeError, ValueError):  # no value logged that epoch ("NA" or absent)
            continue
        wait += 1
        if value > best:
            best, wait = value, 0
    return best, wait


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves a model to a `.keras` file whenever a maximised logged value beats its best.

    Unlike `keras.callbacks.ModelCheckpoint` it saves `serving_model`, not the model being fit
    (the logits view of `kattr.model.logits_model` trains; the sigmoid model is kept), and it
    starts from the best value of earlier sessions of a resumed run. The file is replaced
    atomically.

    Args:
        filepath: str or path. The `.keras` file.
        serving_model: keras.Model. The model saved.
        monitor: str. The logged value to maximise.
        initial_best: float. The best value already saved (from `resume_state`).
            Defaults to -inf.

    Example:
        >>> best, _ = resume_state(run.history, "val_average_accuracy")
        >>> BestModelCheckpoint(run.model, model, "val_average_accuracy", initial_best=best)
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        serving_model: keras.Model,
        monitor: str,
        initial_best: float = -math.inf,
    ):
        super().__init__()
        self.filepath = Path(filepath)
        if self.filepath.suffix != ".keras":
            raise ValueError(f"filepath must end with .keras. Received: filepath={filepath}")
        self.serving_model = serving_model
        self.monitor = monitor
        self.initial_best = float(initial_best)
        self.best = self.initial_best

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None or not float(current) > self.best:  # NaN never improves
            return
        self.best = float(current)
        with atomic_path(self.filepath) as partial:  # a unique name ending in .keras
            self.serving_model.save(partial, overwrite=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` (maximising) that starts from an earlier best and wait.

    Args:
        monitor: str. The logged value to maximise.
        patience: int. Epochs without improvement before stopping.
        initial_best: float. Best value of earlier sessions (from `resume_state`).
            Defaults to -inf (a new run).
        initial_wait: int. Epochs since that best. Defaults to 0.

    Example:
        >>> best, wait = resume_state(run.history, "val_average_accuracy")
        >>> ResumableEarlyStopping("val_average_accuracy", 3, initial_best=best, initial_wait=wait)
    """

    def __init__(
        self,
        monitor: str,
        patience: int,
        initial_best: float = -math.inf,
        initial_wait: int = 0,
    ):
        super().__init__(monitor=monitor, mode="max", patience=patience)
        self.initial_best = float(initial_best)
        self.initial_wait = int(initial_wait)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.initial_best > -math.inf:
            self.best = self.initial_best
            self.wait = self.initial_wait
