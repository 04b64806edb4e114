"""kattr-train: run directory contents, resume after a kill between epochs, kattr-eval."""

import csv
import json

import keras
import numpy as np
import pytest

from kattr.config import load_config
from kattr.evaluation import evaluate_run
from kattr.run_dir import RunDir, load_run
from kattr.training import build_optimizer, learning_rate_schedule, train

TINY = [
    "data.image_size=32",
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
    from kattr.config import OptimizerConfig

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
