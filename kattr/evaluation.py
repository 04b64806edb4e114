"""Offline evaluation of a model on a catalog split (the Python API behind `kattr-eval`).

Writes `report.json`, `report.md` (per-attribute and per-value tables) and `pr_curves.png`.

Example:
    >>> config, model, thresholds = load_run("runs/demo")
    >>> report = evaluate_model(model, config, load_catalog(config).subset("val"), "runs/demo/eval")
    >>> report["mean_average_accuracy"]
    0.93
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import keras
import numpy as np

from kattr._atomic import atomic_path, write_text_atomic
from kattr.catalog import SPLITS, Catalog, load_catalog
from kattr.config import Config
from kattr.metrics import (
    average_precision,
    evaluation_report,
    labelled_rows,
    report_to_markdown,
)
from kattr.model import inference_model_for
from kattr.pipeline import SkipCounter, make_dataset
from kattr.postprocess import thresholds_for
from kattr.run_dir import RunDir, load_run, write_json

__all__ = [
    "CALIBRATION_RECORD",
    "OptimisticReportWarning",
    "evaluate_model",
    "evaluate_run",
    "plot_precision_recall",
    "predict_catalog",
]

# RUN_DIR/calibration.json: which split (of which manifest) thresholds.json was chosen on.
CALIBRATION_RECORD = "calibration.json"


def predict_catalog(
    model: keras.Model, config: Config, catalog: Catalog, batch_size: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Scores every readable image of `catalog`, as served (`model.flip_average`,
    `model.zoom_average`).

    Returns:
        `(targets, scores, skipped)`: targets and scores aligned row by row (unreadable images
        are left out of both), and the number of images skipped.
    """
    counter = SkipCounter(len(catalog))
    dataset = make_dataset(
        catalog.paths,
        catalog.targets,
        config.data.image_shape,
        batch_size or config.train.batch_size,
        training=False,
        counter=counter,
    )
    forward = inference_model_for(model, config)
    names = list(catalog.targets)
    targets = {name: [] for name in names}
    scores = {name: [] for name in names}
    for images, batch_targets in dataset:
        outputs = forward(images, training=False)
        for name in names:
            targets[name].append(batch_targets[name].numpy())
            scores[name].append(np.asarray(outputs[name], dtype=np.float32))

    def stack(parts, name):
        width = catalog.targets[name].shape[1]
        return np.concatenate(parts) if parts else np.zeros((0, width), np.float32)

    return (
        {name: stack(targets[name], name) for name in names},
        {name: stack(scores[name], name) for name in names},
        counter.skipped,
    )


def plot_precision_recall(
    targets: dict[str, np.ndarray], scores: dict[str, np.ndarray], path: str | os.PathLike
) -> Path:
    """One micro-averaged precision-recall curve per attribute over labelled rows, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    figure, axis = plt.subplots(figsize=(6, 5))
    for name, target in targets.items():
        ap = average_precision(target, scores[name])
        labelled = labelled_rows(target)
        truth, score = target[labelled].ravel() == 1, scores[name][labelled].ravel()
        if ap is None or truth.all():
            continue
        precision, recall, _ = precision_recall_curve(truth, score)
        axis.plot(recall, precision, label=f"{name} (AP {ap:.2f})")
    axis.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Precision-recall per attribute (micro over values)",
    )
    axis.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return path


def evaluate_model(
    model: keras.Model,
    config: Config,
    catalog: Catalog,
    output_dir: str | os.PathLike | None = None,
    thresholds: dict[str, np.ndarray] | None = None,
) -> dict:
    """Scores `catalog`, computes the report and (when `output_dir` is given) writes it."""
    thresholds = thresholds or thresholds_for(config.taxonomy, None, config.train.threshold)
    targets, scores, skipped = predict_catalog(model, config, catalog)
    report = evaluation_report(targets, scores, config.taxonomy, thresholds)
    report["rows"] = len(catalog)
    report["skipped_images"] = skipped
    if output_dir is not None:
        output = Path(output_dir)
        output.mkdir(parents=True, exist_ok=True)
        write_json(report, output / "report.json")
        write_text_atomic(output / "report.md", report_to_markdown(report))
        plot_precision_recall(targets, scores, output / "pr_curves.png")
    return report


class OptimisticReportWarning(UserWarning):
    """A report on rows the thresholds were calibrated on: its numbers are optimistic."""


def _calibration_record(run: RunDir) -> dict | None:
    # Which split the run's thresholds.json was calibrated on (written by `evaluate_run`).
    path = run.root / CALIBRATION_RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the calibration record ({error})") from error
    if not isinstance(record, dict) or record.get("calibrated_on") not in SPLITS:
        raise ValueError(
            f"{path}: expected an object with calibrated_on one of {list(SPLITS)}. "
            f"Received: {record!r}"
        )
    return record


def _non_empty(catalog: Catalog, what: str) -> Catalog:
    if len(catalog) == 0:
        raise ValueError(f"{what} has no rows")
    return catalog


def evaluate_run(
    run_dir: str | os.PathLike,
    manifest: str | None = None,
    split: str | None = None,
    output_dir: str | os.PathLike | None = None,
    calibrate: bool = False,
    objective: str = "f1",
    per_value: bool = False,
    calibrate_on: str = "val",
) -> dict:
    """Evaluates a finished run on one split of its catalog or on any manifest of its taxonomy.

    Thresholds chosen on a split make that split look better than new data would, so the
    report never silently uses them: with calibrated thresholds (from this call or an earlier
    `calibrate=True`, recorded in RUN_DIR/calibration.json) the default split is `test`. The
    report always states `calibrated_on` (None: thresholds not calibrated by kattr),
    `reported_on`, `calibration_overlap_rows` (reported rows also used for calibration) and
    `optimistic` (true when that overlap is non-empty; an `OptimisticReportWarning` is issued
    and report.md starts with a warning).

    Args:
        run_dir: the run directory.
        manifest: another manifest following the run's taxonomy (every row is evaluated).
        split: the split of the run's own manifest when `manifest` is None; None gives `test`
            when the thresholds are calibrated and `val` otherwise.
        output_dir: where the report goes (default RUN_DIR/eval, or RUN_DIR/eval-<manifest>).
        calibrate: first choose thresholds on `calibrate_on` and store them in the run
            (thresholds.json, plus calibration.json saying where they come from).
        objective: what calibration maximises: `f1` or `average_accuracy`.
        per_value: calibrate one threshold per value instead of per attribute.
        calibrate_on: the split of the run's own manifest thresholds are chosen on.

    Returns:
        The report as plain JSON data (as written to report.json).

    Raises:
        ValueError: an unknown split, an empty calibration or reported split, or an unreadable
            calibration record.

    Example:
        >>> report = evaluate_run("runs/demo", calibrate=True)
        >>> report["calibrated_on"], report["reported_on"], report["optimistic"]
        ('val', 'test', False)
    """
    from kattr.calibration import calibrate_thresholds

    for name, value in (("split", split), ("calibrate_on", calibrate_on)):
        if value is not None and value not in SPLITS:
            raise ValueError(f"{name} must be one of {list(SPLITS)}. Received: {name}={value!r}")
    run = RunDir(run_dir)
    config, model, thresholds = load_run(run.root)
    own = None  # the run's own catalog, loaded once
    if calibrate:
        own = load_catalog(config)
        calibration = _non_empty(
            own.subset(calibrate_on),
            f"calibration split {calibrate_on!r} of {config.manifest_path}",
        )
        cal_targets, cal_scores, _ = predict_catalog(model, config, calibration)
        chosen = calibrate_thresholds(
            cal_targets, cal_scores, config.taxonomy, objective=objective, per_value=per_value
        )
        write_json(chosen, run.thresholds)
        record = {
            "calibrated_on": calibrate_on,
            "manifest": str(config.manifest_path),
            "rows": len(calibration),
            "objective": objective,
            "per_value": per_value,
        }
        write_json(record, run.root / CALIBRATION_RECORD)
        thresholds = thresholds_for(config.taxonomy, chosen, config.train.threshold)
    else:
        record = _calibration_record(run)
    calibrated_on = record["calibrated_on"] if record else None
    if calibrated_on or manifest is None:
        own = load_catalog(config) if own is None else own
    if manifest is None:
        split = split or ("test" if calibrated_on else "val")
        catalog = _non_empty(own.subset(split), f"split {split!r} of {config.manifest_path}")
        reported_on = split
    else:
        catalog = _non_empty(load_catalog(config, manifest), f"manifest {manifest}")
        reported_on = str(manifest)
    # Counted by image path: also catches the same image listed in two splits or manifests.
    used = set(own.subset(calibrated_on).paths) if calibrated_on else set()
    overlap = sum(path in used for path in catalog.paths)
    if output_dir is None:
        output_dir = run.eval if manifest is None else run.root / f"eval-{Path(manifest).stem}"
    report = evaluate_model(model, config, catalog, output_dir, thresholds)
    report["thresholds"] = {k: np.asarray(v).tolist() for k, v in thresholds.items()}
    report["calibrated_on"] = calibrated_on
    report["reported_on"] = reported_on
    report["calibration_overlap_rows"] = overlap
    report["optimistic"] = overlap > 0
    output = Path(output_dir)
    write_json(report, output / "report.json")
    if overlap:
        message = (
            f"{overlap} of the {len(catalog)} reported rows ({reported_on}) are rows the "
            f"thresholds were calibrated on ({calibrated_on}): these numbers are optimistic. "
            "Report on rows the thresholds never saw "
            f"(kattr-eval --split {'val' if calibrated_on == 'test' else 'test'})."
        )
        warnings.warn(message, OptimisticReportWarning, stacklevel=2)
        markdown = (output / "report.md").read_text(encoding="utf-8")
        write_text_atomic(
            output / "report.md", f"**WARNING: optimistic report.** {message}\n\n{markdown}"
        )
    return json.loads(json.dumps(report, default=lambda v: v.tolist()))
