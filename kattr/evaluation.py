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
from pathlib import Path

import keras
import numpy as np

from kattr.catalog import Catalog, load_catalog
from kattr.config import Config
from kattr.metrics import (
    average_precision,
    evaluation_report,
    labelled_rows,
    report_to_markdown,
)
from kattr.pipeline import SkipCounter, make_dataset
from kattr.postprocess import thresholds_for
from kattr.run_dir import RunDir, load_run, write_json

__all__ = ["evaluate_model", "evaluate_run", "plot_precision_recall", "predict_catalog"]


def predict_catalog(
    model: keras.Model, config: Config, catalog: Catalog, batch_size: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Scores every readable image of `catalog`.

    Returns:
        `(targets, scores, skipped)`: targets and scores aligned row by row (unreadable images
        are left out of both), and the number of images skipped.
    """
    counter = SkipCounter(len(catalog))
    dataset = make_dataset(
        catalog.paths,
        catalog.targets,
        config.data.image_size,
        batch_size or config.train.batch_size,
        training=False,
        counter=counter,
    )
    names = list(catalog.targets)
    targets = {name: [] for name in names}
    scores = {name: [] for name in names}
    for images, batch_targets in dataset:
        outputs = model(images, training=False)
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
    tmp = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    os.replace(tmp, path)
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
        markdown = report_to_markdown(report)
        tmp = output / ".report.md.tmp"
        tmp.write_text(markdown)
        os.replace(tmp, output / "report.md")
        plot_precision_recall(targets, scores, output / "pr_curves.png")
    return report


def evaluate_run(
    run_dir: str | os.PathLike,
    manifest: str | None = None,
    split: str | None = "val",
    output_dir: str | os.PathLike | None = None,
    calibrate: bool = False,
    objective: str = "f1",
    per_value: bool = False,
) -> dict:
    """Evaluates a finished run on its validation split or on any manifest of its taxonomy.

    Args:
        run_dir: the run directory.
        manifest: another manifest following the run's taxonomy (every row is evaluated).
        split: the split of the run's own manifest when `manifest` is None.
        output_dir: where the report goes (default RUN_DIR/eval, or RUN_DIR/eval-<manifest>).
        calibrate: first choose thresholds on the validation split and store them in the run.
        objective: what calibration maximises: `f1` or `average_accuracy`.
        per_value: calibrate one threshold per value instead of per attribute.
    """
    from kattr.calibration import calibrate_thresholds

    run = RunDir(run_dir)
    config, model, thresholds = load_run(run.root)
    if calibrate:
        val_targets, val_scores, _ = predict_catalog(
            model, config, load_catalog(config).subset("val")
        )
        chosen = calibrate_thresholds(
            val_targets, val_scores, config.taxonomy, objective=objective, per_value=per_value
        )
        write_json(chosen, run.thresholds)
        thresholds = thresholds_for(config.taxonomy, chosen, config.train.threshold)
    catalog = load_catalog(config, manifest)
    if manifest is None:
        catalog = catalog.subset(split)
    if output_dir is None:
        output_dir = run.eval if manifest is None else run.root / f"eval-{Path(manifest).stem}"
    report = evaluate_model(model, config, catalog, output_dir, thresholds)
    report["thresholds"] = {k: np.asarray(v).tolist() for k, v in thresholds.items()}
    write_json(report, Path(output_dir) / "report.json")
    return json.loads(json.dumps(report, default=lambda v: v.tolist()))
