"""Training a kattr model into a run directory (the Python API behind `kattr-train`).

Example:
    >>> config = load_config("demo/config.yaml", ["train.epochs=3"])
    >>> result = train(config, "runs/demo")
    >>> result.best_val_average_accuracy
    0.91
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import yaml

from kattr._schema import to_data
from kattr.callbacks import MeanAttributeMetric, SkippedImagesLogger
from kattr.catalog import Catalog, load_catalog
from kattr.config import Config, OptimizerConfig, save_config
from kattr.distribute import select_strategy
from kattr.evaluation import evaluate_model
from kattr.losses import balanced_positive_weights, build_losses
from kattr.metrics import build_metrics
from kattr.model import build_model, precision_policy
from kattr.pipeline import SkipCounter, make_dataset
from kattr.run_dir import RunDir, write_json
from kattr.sampling import plan_sampling

__all__ = ["TrainResult", "build_optimizer", "learning_rate_schedule", "train"]

MONITOR = "val_average_accuracy"


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    epochs_run: int
    best_val_average_accuracy: float
    report: dict


def learning_rate_schedule(
    config: OptimizerConfig, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Exponential decay by `decay_rate` every `decay_epochs` epochs (paper: 0.75 per epoch)."""
    return keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate,
        decay_steps=max(1, round(config.decay_epochs * steps_per_epoch)),
        decay_rate=config.decay_rate,
        staircase=True,
    )


def build_optimizer(config: OptimizerConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam or AdamW (`config.name`) on the `learning_rate_schedule`."""
    schedule = learning_rate_schedule(config, steps_per_epoch)
    if config.name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(schedule)


def _prepare_run_dir(config: Config, run: RunDir) -> None:
    if run.summary.exists():
        raise FileExistsError(
            f"{run.root}: already holds a finished run; choose another --output "
            "(an interrupted run resumes when started again with the same directory)"
        )
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config)
    taxonomy = {"taxonomy": to_data(config.taxonomy)}
    run.taxonomy.write_text(yaml.safe_dump(taxonomy, sort_keys=False))


def _datasets(config: Config, train: Catalog, val: Catalog, counters: dict[str, SkipCounter]):
    data, settings = config.data, config.train
    common = {"image_size": data.image_size, "batch_size": settings.batch_size, "cache": data.cache}
    train_data = make_dataset(
        train.paths, train.targets, training=True, augmentation=settings.augmentation,
        shuffle_buffer=data.shuffle_buffer, seed=settings.seed, counter=counters["train"], **common,
    )
    val_data = make_dataset(
        val.paths, val.targets, training=False, counter=counters["val"], **common
    )
    return train_data, val_data


def _callbacks(config: Config, run: RunDir, counters: dict[str, SkipCounter]) -> list:
    names = [a.name for a in config.taxonomy.attributes]
    callbacks = [
        MeanAttributeMetric(names),
        SkippedImagesLogger(counters),
        keras.callbacks.ModelCheckpoint(
            run.model, monitor=MONITOR, mode="max", save_best_only=True, verbose=0
        ),
        keras.callbacks.BackupAndRestore(str(run.backup)),
        keras.callbacks.TensorBoard(str(run.logs), write_graph=False),
        keras.callbacks.CSVLogger(str(run.history), append=True),
    ]
    if config.train.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="max", patience=config.train.early_stopping_patience
            )
        )
    return callbacks


def train(
    config: Config,
    output_dir: str | Path,
    extra_callbacks: list | None = None,
    verbose: int | str = "auto",
) -> TrainResult:
    """Trains on the config's train split, keeps the best model by validation average accuracy.

    Starting again with the same `output_dir` after an interruption resumes from the last
    finished epoch (Keras `BackupAndRestore`).

    Args:
        config: the experiment.
        output_dir: the run directory (created).
        extra_callbacks: more Keras callbacks (e.g. for tests).
        verbose: Keras progress bar setting.
    """
    run = RunDir(output_dir)
    resuming = run.backup.exists()
    if not resuming:
        _prepare_run_dir(config, run)
    keras.utils.set_random_seed(config.train.seed)

    catalog = load_catalog(config)
    train_split, val_split = catalog.subset("train"), catalog.subset("val")
    if len(train_split) == 0 or len(val_split) == 0:
        raise ValueError(
            f"{config.manifest_path}: the train and val splits must both hold rows. "
            f"Received: train={len(train_split)}, val={len(val_split)}"
        )
    plan = plan_sampling(
        np.asarray(train_split.categories(config.taxonomy), dtype=object),
        train_split.targets, config.train.sampling, config.taxonomy, seed=config.train.seed,
    )
    train_split = train_split.take(plan.indices)
    positive_weights = None
    if config.train.loss.positive_weights == "balanced":
        positive_weights = balanced_positive_weights(
            train_split.targets, config.train.loss.max_positive_weight
        )
        plan.report["positive_weights"] = {k: v.tolist() for k, v in positive_weights.items()}
    write_json(plan.report, run.sampling)

    counters = {"train": SkipCounter(len(train_split)), "val": SkipCounter(len(val_split))}
    train_data, val_data = _datasets(config, train_split, val_split, counters)
    steps_per_epoch = math.ceil(len(train_split) / config.train.batch_size)

    with precision_policy(config.train.mixed_precision):
        with select_strategy().scope():
            model = build_model(config)
            losses, loss_weights = build_losses(config, positive_weights)
            model.compile(
                optimizer=build_optimizer(config.train.optimizer, steps_per_epoch),
                loss=losses,
                loss_weights=loss_weights,
                metrics=build_metrics(config),
                jit_compile=config.train.jit_compile,
            )
        started = time.time()
        history = model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.train.epochs,
            callbacks=_callbacks(config, run, counters) + list(extra_callbacks or []),
            verbose=verbose,
        )
        seconds = time.time() - started

    best_model = keras.saving.load_model(run.model, compile=False, safe_mode=True)
    report = evaluate_model(best_model, config, val_split, output_dir=run.eval)
    if not run.thresholds.exists():
        write_json({a.name: config.train.threshold for a in config.taxonomy.attributes},
                   run.thresholds)
    monitored = [v for v in history.history.get(MONITOR, []) if v is not None]
    summary = {
        "epochs_run_this_session": len(history.epoch),
        "resumed": resuming,
        "train_rows": len(train_split),
        "val_rows": len(val_split),
        "dropped_unknown_rows": catalog.dropped,
        "seconds": round(seconds, 1),
        "images_per_second": round(len(train_split) * len(history.epoch) / max(seconds, 1e-9), 1),
        "skipped_images_last_epoch": int(history.history.get("skipped_images", [0])[-1]),
        "best_val_average_accuracy": max(monitored) if monitored else None,
        "val_report_average_accuracy": report["mean_average_accuracy"],
    }
    write_json(summary, run.summary)
    if run.backup.exists():  # BackupAndRestore removes it on success; keep the run dir tidy
        shutil.rmtree(run.backup, ignore_errors=True)
    return TrainResult(
        run_dir=run.root,
        epochs_run=len(history.epoch),
        best_val_average_accuracy=summary["best_val_average_accuracy"] or 0.0,
        report=report,
    )
