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
import tensorflow as tf
import yaml

from kattr._schema import to_data
from kattr.callbacks import (
    BestModelCheckpoint,
    MeanAttributeMetric,
    ResumableEarlyStopping,
    SkippedImagesLogger,
    resume_state,
)
from kattr.catalog import Catalog, load_catalog
from kattr.config import Config, OptimizerConfig, save_config
from kattr.distribute import select_strategy
from kattr.evaluation import evaluate_model
from kattr.losses import balanced_positive_weights, build_losses
from kattr.metrics import build_metrics
from kattr.model import (
    build_model,
    logits_model,
    precision_policy,
    set_output_biases_to_priors,
)
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
    config: OptimizerConfig, steps_per_epoch: int, epochs: int | None = None
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate per optimizer step, as `config.schedule` says.

    `exponential`: decay by `decay_rate` every `decay_epochs` epochs (paper: 0.75 per epoch).
    `cosine`: linear warm-up from 0 over `warmup_epochs`, then cosine decay to 0 at the end of
    `epochs`.

    Args:
        config: the optimizer settings.
        steps_per_epoch: optimizer steps per epoch.
        epochs: epochs of the whole run (`train.epochs`); required by `cosine`.

    Example:
        >>> schedule = learning_rate_schedule(OptimizerConfig(schedule="cosine"), 10, epochs=3)
        >>> float(schedule(30))
        0.0
    """
    if config.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate,
            decay_steps=max(1, round(config.decay_epochs * steps_per_epoch)),
            decay_rate=config.decay_rate,
            staircase=True,
        )
    if epochs is None or epochs < 1:
        raise ValueError(f"the cosine schedule needs the run's epochs (>= 1). Received: {epochs=}")
    total_steps = epochs * steps_per_epoch
    warmup_steps = min(round(config.warmup_epochs * steps_per_epoch), total_steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=total_steps - warmup_steps,
        alpha=0.0,
        warmup_target=config.learning_rate,
        warmup_steps=warmup_steps,
    )


def build_optimizer(
    config: OptimizerConfig, steps_per_epoch: int, epochs: int | None = None
) -> keras.optimizers.Optimizer:
    """Adam or AdamW (`config.name`) on the `learning_rate_schedule`, keeping a moving average
    of the weights when `config.ema_momentum` is set."""
    schedule = learning_rate_schedule(config, steps_per_epoch, epochs)
    ema = {}
    if config.ema_momentum is not None:
        ema = {"use_ema": True, "ema_momentum": config.ema_momentum}
    if config.name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **ema)
    return keras.optimizers.Adam(schedule, **ema)


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
    common = {
        "image_size": data.image_shape, "batch_size": settings.batch_size, "cache": data.cache
    }
    train_data = make_dataset(
        train.paths, train.targets, training=True, augmentation=settings.augmentation,
        shuffle_buffer=data.shuffle_buffer, seed=settings.seed, counter=counters["train"],
        deterministic=settings.deterministic, **common,
    )
    val_data = make_dataset(
        val.paths, val.targets, training=False, counter=counters["val"], **common
    )
    return train_data, val_data


def _callbacks(
    config: Config,
    run: RunDir,
    counters: dict[str, SkipCounter],
    serving_model: keras.Model,
    resuming: bool,
) -> list:
    names = [a.name for a in config.taxonomy.attributes]
    # A resumed run must not overwrite a better model.keras nor forget its patience count.
    best, wait = resume_state(run.history, MONITOR) if resuming else (-math.inf, 0)
    # With a weight average, validation sees the average (SwapEMAWeights); the backup takes
    # the plain weights first, then the average is swapped in for the checkpoint until the
    # next epoch begins.
    averaging = []
    if config.train.optimizer.ema_momentum is not None:
        averaging = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)]
    callbacks = [
        MeanAttributeMetric(names),
        SkippedImagesLogger(counters),
        keras.callbacks.BackupAndRestore(str(run.backup)),
        *averaging,
        BestModelCheckpoint(run.model, serving_model, MONITOR, initial_best=best),
        keras.callbacks.TensorBoard(str(run.logs), write_graph=False),
        keras.callbacks.CSVLogger(str(run.history), append=True),
    ]
    if config.train.early_stopping_patience is not None:
        callbacks.append(
            ResumableEarlyStopping(
                MONITOR, config.train.early_stopping_patience, initial_best=best, initial_wait=wait
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
    finished epoch (Keras `BackupAndRestore`); the best model and the early-stopping patience
    carry over through `history.csv`.

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
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()

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
            if config.model.output_bias == "prior":
                set_output_biases_to_priors(model, config, train_split.targets)
            # Trained on logits (stable, unclipped BCE); `model` (sigmoid outputs) is saved.
            training_model = logits_model(model)
            losses, loss_weights = build_losses(config, positive_weights, from_logits=True)
            training_model.compile(
                optimizer=build_optimizer(
                    config.train.optimizer, steps_per_epoch, config.train.epochs
                ),
                loss=losses,
                loss_weights=loss_weights,
                metrics=build_metrics(config, from_logits=True),
                jit_compile=config.train.jit_compile,
            )
        started = time.time()
        callbacks = _callbacks(config, run, counters, model, resuming)
        history = training_model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.train.epochs,
            callbacks=callbacks + list(extra_callbacks or []),
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
