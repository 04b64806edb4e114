"""kattr-train: run directory contents, resume after a kill between epochs, kattr-eval."""

import csv
import json

import keras
import numpy as np
import pytest

from kattr.config import OptimizerConfig, load_config
from kattr.evaluation import evaluate_run
from kattr.run_dir import RunDir, load_run
from kattr.training import build_optimizer, learning_rate_schedule, train

# The tiny test backbone: these tests check the training plumbing (tests/test_learning.py
# checks that EfficientNetB0 learns).
TINY = [
    "data.image_size=32",
    "model.backbone=tiny_cnn",
    "train.batch_size=16",
    "train.augmentation.enabled=false",
    "model.attention_width=32",
    "model.feedforward_width=32",
    "model.branch_units=[16, 16]",
    "train.early_stopping_patience=null",
]


class KillAfterEpoch(keras.callbacks.Callback):
    """Simulates a killed process right after an epoch finished (and was backed up)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("killed")


def history_epochs(run):
    with open(RunDir(run).history) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def resumed_run(synthetic_catalog, tmp_path_factory):
    config = load_config(synthetic_catalog.config_path, TINY + ["train.epochs=3"])
    run = tmp_path_factory.mktemp("runs") / "resume"
    with pytest.raises(RuntimeError, match="killed"):
        train(config, run, extra_callbacks=[KillAfterEpoch(1)], verbose=0)
    assert RunDir(run).backup.exists() and not RunDir(run).summary.exists()
    result = train(config, run, verbose=0)
    return config, run, result


def test_resume_continues_from_the_saved_epoch(resumed_run):
    _, run, result = resumed_run
    assert result.epochs_run == 1  # only epoch 3 was left
    assert history_epochs(run) == [0, 1, 2]
    summary = json.loads(RunDir(run).summary.read_text())
    assert summary["resumed"] is True
    assert not RunDir(run).backup.exists()


def test_run_directory_holds_everything_a_user_needs(resumed_run):
    config, run, _ = resumed_run
    paths = RunDir(run)
    for path in (paths.config, paths.taxonomy, paths.model, paths.thresholds, paths.history,
                 paths.sampling, paths.summary, paths.eval / "report.json",
                 paths.eval / "report.md", paths.eval / "pr_curves.png"):
        assert path.exists(), path
    assert any(paths.logs.rglob("*tfevents*"))
    loaded_config, model, thresholds = load_run(run)  # safe mode, custom objects registered
    assert loaded_config.taxonomy == config.taxonomy
    assert set(model.output_names) == {a.name for a in config.taxonomy.attributes}
    np.testing.assert_allclose(thresholds["colour"], 0.5)
    with pytest.raises(FileExistsError, match="already holds a finished run"):
        train(config, run, verbose=0)


def test_eval_on_another_manifest_and_calibration(resumed_run, tmp_path):
    config, run, _ = resumed_run
    report = evaluate_run(run, manifest=str(config.manifest_path), output_dir=tmp_path / "all")
    rows = {row["attribute"]: row for row in report["attributes"]}
    assert set(rows) == {a.name for a in config.taxonomy.attributes}
    assert report["rows"] == 120
    sleeve = rows["sleeve"]
    assert sleeve["not_applicable"] > 0 and sleeve["missing"] > 0
    assert (tmp_path / "all" / "report.md").read_text().startswith("Mean average accuracy")
    calibrated = evaluate_run(run, calibrate=True, output_dir=tmp_path / "cal")
    saved = json.loads(RunDir(run).thresholds.read_text())
    assert set(saved) == set(rows)
    assert calibrated["thresholds"]["colour"] == pytest.approx(np.full(6, saved["colour"]).tolist())


def test_optimizer_schedule_decays_per_epoch():
    schedule = learning_rate_schedule(OptimizerConfig(learning_rate=1e-5, decay_rate=0.75), 10)
    assert float(schedule(0)) == pytest.approx(1e-5)
    assert float(schedule(10)) == pytest.approx(0.75e-5)
    assert float(schedule(25)) == pytest.approx(1e-5 * 0.75**2)
    adamw = build_optimizer(OptimizerConfig(name="adamw", weight_decay=0.01), 10)
    assert isinstance(adamw, keras.optimizers.AdamW)


def test_mixed_precision_training_keeps_float32_scores_and_restores_the_policy(
    synthetic_catalog, tmp_path
):
    overrides = TINY + ["train.epochs=1", "train.mixed_precision=true"]
    config = load_config(synthetic_catalog.config_path, overrides)
    result = train(config, tmp_path / "mixed", verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"
    with open(RunDir(result.run_dir).history) as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert losses and all(np.isfinite(losses))
    _, model, _ = load_run(result.run_dir)
    assert model.get_layer("branches").compute_dtype == "float16"
    scores = model(np.zeros((2, 32, 32, 3), "float32"))
    assert all(value.dtype == "float32" for value in scores.values())
    assert result.epochs_run == 1


def test_resumed_run_keeps_a_better_saved_model_and_the_patience_count(
    synthetic_catalog, tmp_path
):
    overrides = TINY + ["train.epochs=4", "train.early_stopping_patience=1"]
    config = load_config(synthetic_catalog.config_path, overrides)
    run = RunDir(tmp_path / "resume_best")
    with pytest.raises(RuntimeError, match="killed"):
        train(config, run.root, extra_callbacks=[KillAfterEpoch(1)], verbose=0)
    # The first session's epoch 0 scored better than any epoch can (1.5 > 1), epoch 1 did not:
    # the saved model is the best one and early stopping has waited one epoch.
    with open(run.history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    rows[0]["val_average_accuracy"] = "1.5"
    rows[1]["val_average_accuracy"] = "0.5"
    with open(run.history, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    saved = run.model.read_bytes()
    result = train(config, run.root, verbose=0)
    assert run.model.read_bytes() == saved  # epoch 2 (below 1.5) did not overwrite it
    assert result.epochs_run == 1  # patience 1 was already used up: stop after epoch 2
    assert history_epochs(run.root) == [0, 1, 2]
    # The kept model is the serving model: named sigmoid outputs, safe-mode loadable.
    model = keras.saving.load_model(run.model, safe_mode=True)
    scores = model(np.zeros((2, 32, 32, 3), "float32"))
    assert set(scores) == {a.name for a in config.taxonomy.attributes}
    for name, value in scores.items():
        assert model.get_layer(name).get_config()["activation"] == "sigmoid"
        assert np.all((keras.ops.convert_to_numpy(value) > 0) & (value < 1))


def test_logits_model_shares_the_weights_and_feeds_the_sigmoid_outputs(synthetic_catalog):
    from kattr.model import build_model, logits_model

    config = load_config(synthetic_catalog.config_path, TINY)
    model = build_model(config)
    view = logits_model(model)
    assert view.weights[0] is model.weights[0] and len(view.weights) == len(model.weights)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    scores, logits = model(images), view(images)
    assert set(logits) == set(scores)
    for name in scores:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(keras.ops.sigmoid(logits[name])),
            keras.ops.convert_to_numpy(scores[name]), rtol=1e-6,
        )


def test_cosine_schedule_warms_up_then_decays_to_zero():
    settings = OptimizerConfig(learning_rate=1e-3, schedule="cosine", warmup_epochs=1.5)
    schedule = learning_rate_schedule(settings, steps_per_epoch=10, epochs=4)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(1e-3 / 3, rel=1e-5)  # linear warm-up
    assert float(schedule(15)) == pytest.approx(1e-3, rel=1e-5)  # end of the warm-up
    assert float(schedule(15 + 25 / 2)) == pytest.approx(5e-4, rel=1e-5)  # half-way down
    assert float(schedule(39)) < 1e-5 and float(schedule(40)) == pytest.approx(0.0, abs=1e-12)
    no_warmup = learning_rate_schedule(OptimizerConfig(schedule="cosine"), 10, epochs=4)
    assert float(no_warmup(0)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="epochs"):
        learning_rate_schedule(settings, 10)


@pytest.mark.parametrize(
    "optimizer",
    [["train.optimizer.schedule=cosine", "train.optimizer.warmup_epochs=3"],
     ["train.optimizer.warmup_epochs=1"]],
)
def test_warmup_must_fit_the_run_and_needs_the_cosine_schedule(synthetic_catalog, optimizer):
    from kattr.config import ConfigError

    with pytest.raises(ConfigError, match="train.optimizer.warmup_epochs"):
        load_config(synthetic_catalog.config_path, optimizer + ["train.epochs=3"])


@pytest.mark.parametrize("cache", [False, True])
def test_deterministic_training_ends_with_the_same_weights_twice(
    synthetic_catalog, tmp_path, cache
):
    """`train.deterministic`: two runs of one config, augmentation on, give identical weights."""
    overrides = TINY + [
        "train.epochs=2", "train.deterministic=true", "train.augmentation.enabled=true",
        f"data.cache={str(cache).lower()}",
    ]
    config = load_config(synthetic_catalog.config_path, overrides)
    weights = []
    for name in ("first", "second"):
        _, model, _ = load_run(train(config, tmp_path / name, verbose=0).run_dir)
        weights.append(model.get_weights())
    assert len(weights[0]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))


def trainable_weights_of(model):
    """A copy of `model`'s trainable weights by variable path."""
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.trainable_weights}


class RecordTrainableWeights(keras.callbacks.Callback):
    """Copies the trainable weights at the start of the session, after its first step, at the
    start of each validation, and after its last step."""

    def __init__(self):
        super().__init__()
        self.at_start, self.first_step, self.at_validation, self.last_step = None, None, [], None

    def on_train_begin(self, logs=None):
        # After BackupAndRestore restored a resumed run.
        self.at_start = trainable_weights_of(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.last_step = trainable_weights_of(self.model)
        if self.first_step is None:
            self.first_step = self.last_step

    def on_test_begin(self, logs=None):
        self.at_validation.append(trainable_weights_of(self.model))


def max_gap(a, b):
    assert set(a) == set(b) and a
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def test_weight_average_is_what_validation_sees_and_the_run_keeps(synthetic_catalog, tmp_path):
    """`train.optimizer.ema_momentum`: with a momentum of almost 1 the average stays at the
    weights after the first step (Keras starts it there), while the weights themselves move on.
    Validation and the saved model see the average; a resumed run trains on from the weights."""
    overrides = TINY + ["train.epochs=3", "train.optimizer.ema_momentum=0.9999999"]
    config = load_config(synthetic_catalog.config_path, overrides)
    run = RunDir(tmp_path / "ema")
    first = RecordTrainableWeights()
    with pytest.raises(RuntimeError, match="killed"):
        train(config, run.root, extra_callbacks=[first, KillAfterEpoch(0)], verbose=0)
    moved = max_gap(first.first_step, first.last_step)
    assert moved > 1e-3  # the weights moved on in the first epoch
    assert max_gap(first.at_validation[0], first.first_step) < 1e-3 * moved

    second = RecordTrainableWeights()
    train(config, run.root, extra_callbacks=[second], verbose=0)
    # Resumed from the weights of the first epoch, not from their average.
    assert max_gap(second.at_start, first.last_step) < 1e-6
    for weights in second.at_validation:
        assert max_gap(weights, first.first_step) < 1e-3 * moved
    saved = keras.saving.load_model(run.model, compile=False, safe_mode=True)
    kept = trainable_weights_of(saved)
    assert max_gap(kept, first.first_step) < 1e-3 * moved
    assert max_gap(kept, second.last_step) > 0.5 * moved


def test_weight_average_momentum_must_lie_between_0_and_1(synthetic_catalog):
    from kattr.config import ConfigError

    with pytest.raises(ConfigError, match="train.optimizer.ema_momentum.*Received: 1.0"):
        load_config(synthetic_catalog.config_path, ["train.optimizer.ema_momentum=1.0"])
    averaged = build_optimizer(OptimizerConfig(ema_momentum=0.99), 10)
    assert averaged.use_ema and averaged.ema_momentum == 0.99
    assert not build_optimizer(OptimizerConfig(), 10).use_ema
