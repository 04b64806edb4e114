"""kattr-eval: thresholds calibrated on one split, the report on another (or flagged optimistic)."""

import json
import shutil
import warnings

import numpy as np
import pytest

from kattr.catalog import load_catalog
from kattr.cli.evaluate import main as eval_main
from kattr.config import load_config, save_config
from kattr.evaluation import CALIBRATION_RECORD, OptimisticReportWarning, evaluate_run
from kattr.model import build_model
from kattr.run_dir import RunDir

# At 32 px the backbone leaves one token, so attention softmaxes over a single key: harmless.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax:UserWarning")

TINY = [
    "data.image_size=32",
    "model.backbone=tiny_cnn",
    "train.batch_size=32",
    "model.attention_width=16",
    "model.feedforward_width=16",
    "model.branch_units=[8]",
]


@pytest.fixture(scope="module")
def built_run(synthetic_catalog, tmp_path_factory):
    """A run directory holding a tiny untrained model: calibration only needs some scores."""
    config = load_config(synthetic_catalog.config_path, TINY)
    run = RunDir(tmp_path_factory.mktemp("built") / "run")
    run.root.mkdir()
    save_config(config, run.config)
    build_model(config).save(run.model)
    return config, run.root


@pytest.fixture
def run_dir(built_run, tmp_path):
    """A private copy of the run: calibration writes into it."""
    config, root = built_run
    copy = tmp_path / "run"
    shutil.copytree(root, copy)
    return config, copy


def split_rows(config, split):
    return len(load_catalog(config).subset(split))


def read_report(folder):
    return json.loads((folder / "report.json").read_text())


def test_calibrate_reports_on_test_by_default(run_dir, tmp_path):
    config, run = run_dir
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimisticReportWarning)
        report = evaluate_run(run, calibrate=True, output_dir=tmp_path / "out")
    assert report["calibrated_on"] == "val"
    assert report["reported_on"] == "test"
    assert report["optimistic"] is False and report["calibration_overlap_rows"] == 0
    assert report["rows"] == split_rows(config, "test") > 0
    on_disk = read_report(tmp_path / "out")
    assert {k: on_disk[k] for k in ("calibrated_on", "reported_on", "optimistic")} == {
        "calibrated_on": "val", "reported_on": "test", "optimistic": False
    }
    record = json.loads((run / CALIBRATION_RECORD).read_text())
    assert record["calibrated_on"] == "val" and record["rows"] == split_rows(config, "val")
    assert (tmp_path / "out" / "report.md").read_text().startswith("Mean average accuracy")


def test_reporting_on_the_calibration_split_is_flagged(run_dir, tmp_path):
    config, run = run_dir
    with pytest.warns(OptimisticReportWarning, match="optimistic"):
        report = evaluate_run(run, split="val", calibrate=True, output_dir=tmp_path / "out")
    rows = split_rows(config, "val")
    assert report["rows"] == rows
    assert report["calibrated_on"] == "val" and report["reported_on"] == "val"
    assert report["optimistic"] is True and report["calibration_overlap_rows"] == rows
    assert read_report(tmp_path / "out")["optimistic"] is True
    assert (tmp_path / "out" / "report.md").read_text().startswith("**WARNING: optimistic")


def test_calibration_on_another_split(run_dir, tmp_path):
    config, run = run_dir
    report = evaluate_run(run, calibrate=True, calibrate_on="test", split="val",
                          output_dir=tmp_path / "out")
    assert (report["calibrated_on"], report["reported_on"], report["optimistic"]) == (
        "test", "val", False
    )


def test_later_reports_remember_the_calibration_split(run_dir, tmp_path):
    config, run = run_dir
    uncalibrated = evaluate_run(run, output_dir=tmp_path / "before")
    assert uncalibrated["calibrated_on"] is None
    assert uncalibrated["reported_on"] == "val" and uncalibrated["optimistic"] is False
    calibrated = evaluate_run(run, calibrate=True, output_dir=tmp_path / "cal")
    later = evaluate_run(run, output_dir=tmp_path / "later")
    assert (later["calibrated_on"], later["reported_on"], later["optimistic"]) == (
        "val", "test", False
    )
    assert later["thresholds"] == calibrated["thresholds"]
    # The whole manifest holds the calibration rows: counted by image path.
    with pytest.warns(OptimisticReportWarning):
        whole = evaluate_run(run, manifest=str(config.manifest_path), output_dir=tmp_path / "all")
    assert whole["reported_on"] == str(config.manifest_path)
    assert whole["calibration_overlap_rows"] == split_rows(config, "val")
    assert whole["optimistic"] is True


def test_bad_split_and_unreadable_record_are_clear_errors(run_dir, tmp_path):
    _, run = run_dir
    with pytest.raises(ValueError, match="split must be one of .* Received: split='dev'"):
        evaluate_run(run, split="dev")
    (run / CALIBRATION_RECORD).write_text('{"calibrated_on": "holdout"}')
    with pytest.raises(ValueError, match="calibration.json: expected an object"):
        evaluate_run(run)


def test_cli_warns_loudly_only_when_optimistic(run_dir, tmp_path, capsys):
    config, run = run_dir
    assert eval_main(["--run", str(run), "--calibrate", "--output", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "calibrated on: val; reported on: test" in captured.out
    assert "OPTIMISTIC" not in captured.err
    argv = ["--run", str(run), "--calibrate", "--split", "val", "--output", str(tmp_path / "b")]
    assert eval_main(argv) == 0
    captured = capsys.readouterr()
    assert "WARNING: OPTIMISTIC REPORT" in captured.err
    assert "reported on: val" in captured.out
    report = read_report(tmp_path / "b")
    assert report["optimistic"] is True
    assert np.isfinite(report["mean_average_accuracy"])
