"""Real-catalog accuracy, side by side: kattr variants against strong simple baselines.

On the fashion-products sample (`../shared/data/fashion-products`), every row of one table is
scored on the same held-out `test` split, which no variant trains on, picks checkpoints on or
calibrates on (the hash split of `kattr.catalog`; checkpoints and thresholds use `val`):

- kattr, the default recipe of `configs/fashion-products.yaml` (what `kattr-train` gives);
- kattr with `model.attention: none` (ablation of the transformer block);
- kattr with missing labels as negatives (`train.loss.missing_as_negative: true`, ablation of
  the masked loss);
- kattr without the HSV histograms that the default hands to the colour branch next to the
  embedding (`model.colour_histogram_bins: null`, ablation of the colour statistics);
- a logistic regression on 16x16 thumbnails + HSV histograms (`thumbnail_baseline.py`);
- the majority answer (the train split's most frequent target row).

Each kattr run is evaluated as a user would: thresholds calibrated on val
(`kattr-eval --calibrate`), then the test split. Eq. (2) average accuracy per attribute
(accuracy for exclusive ones, product type included), with the training time of each row, then
average precision (threshold-free) for the kattr variants.

A variant whose folder under `--output` already holds a finished run of the same recipe is
evaluated again, not retrained, so an interrupted benchmark goes on where it stopped (a
finished run of another recipe there is an error that names the folder).

Typical usage (the recipe's own epochs; about 25-27 minutes per kattr variant on 2 idle CPU
cores):
    python benchmarks/real_catalog.py --output /tmp/kattr-real
    python benchmarks/real_catalog.py --variants default --epochs 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "default": [],
    "attention-none": ["model.attention=none"],
    "missing-as-negative": ["train.loss.missing_as_negative=true"],
    "no-colour-statistics": ["model.colour_histogram_bins=null",
                             "model.colour_histogram_attributes=null"],
}
LABELS = {
    "default": "kattr, default recipe ({loss}, attention, colour statistics)",
    "attention-none": "kattr, attention: none",
    "missing-as-negative": "kattr, missing labels as negatives",
    "no-colour-statistics": "kattr, colour branch without HSV histograms",
    "thumbnail": "logistic regression, 16x16 thumbnail + HSV histogram",
    "majority": "majority answer",
}


def with_mean(row: dict[str, float | None]) -> dict[str, float | None]:
    """The row with a `mean` entry over its attributes that have a score (`seconds` excluded)."""
    import numpy as np

    scores = [v for k, v in row.items() if k != "seconds" and v is not None]
    return {**row, "mean": float(np.nanmean(scores))}


def loss_name(config) -> str:
    """The recipe's loss in a few words, for the default row's label.

    Example: `loss_name(load_config("configs/fashion-products.yaml"))` is
    "masked focal loss, gamma 1".
    """
    gamma = config.train.loss.focal_gamma
    return f"masked focal loss, gamma {gamma:g}" if gamma else "masked BCE"


def print_table(title: str, table: dict[str, dict[str, float]], labels: dict[str, str]) -> None:
    """A Markdown table: one row per variant (labelled by `labels`, else by its name), one
    column per attribute, then mean and seconds."""
    columns = [c for c in next(iter(table.values())) if c not in ("mean", "seconds")]
    columns += ["mean", "seconds"]
    print(f"\n{title}\n\n| variant | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, row in table.items():
        cells = []
        for column in columns:
            value = row.get(column)
            cells.append("–" if value is None else f"{value:.0f}" if column == "seconds"
                         else f"{value:.3f}")
        print(f"| {labels.get(name, name)} | " + " | ".join(cells) + " |")


# Data settings that locate or cache the files, not part of the recipe.
DATA_LOCATION = ("manifest", "image_root", "cache")


def recipe(config) -> dict:
    """What makes two runs the same recipe: model, train and taxonomy settings, and the data
    settings other than file locations and caching (image size, splits, unknown values)."""
    from kattr.config import config_to_dict

    settings = config_to_dict(config)
    data = {k: v for k, v in settings["data"].items() if k not in DATA_LOCATION}
    return {"data": data, **{key: settings[key] for key in ("model", "train", "taxonomy")}}


def finished_run_seconds(config, run: Path) -> float | None:
    """The training seconds of a finished run of `config`'s recipe in `run`, or None if there
    is no finished run; a finished run of another recipe (see `recipe`) is a ValueError that
    names the folder."""
    from kattr.config import load_config

    summary = run / "summary.json"
    if not summary.exists():
        return None
    saved, wanted = recipe(load_config(run / "config.yaml")), recipe(config)
    differs = [key for key in wanted if saved[key] != wanted[key]]
    if differs:
        raise ValueError(f"{run}: holds a finished run of another recipe ({', '.join(differs)} "
                         "differ); choose another --output or remove the folder")
    return json.loads(summary.read_text())["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "fashion-products.yaml"))
    parser.add_argument("--source", default=str(ROOT.parent / "shared/data/fashion-products"))
    parser.add_argument("--epochs", type=int, default=None,
                        help="override train.epochs (default: the recipe's own)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", default="/tmp/kattr-real-catalog")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from thumbnail_baseline import baseline_scores

    from kattr.config import load_config
    from kattr.evaluation import evaluate_run
    from kattr.fashion_products import prepare_fashion_products
    from kattr.training import train

    output = Path(args.output)
    base = load_config(args.config)
    if not base.manifest_path.exists():
        pattern = next(a for a in base.taxonomy.attributes if a.name == "pattern")
        prepare_fashion_products(args.source, base.manifest_path.parent, pattern.applies_to)
    common = [] if args.epochs is None else [f"train.epochs={args.epochs}"]
    accuracy: dict[str, dict[str, float]] = {}
    precision: dict[str, dict[str, float]] = {}
    for name in args.variants:
        config = load_config(args.config, common + VARIANTS[name])
        run = output / name
        seconds = finished_run_seconds(config, run)
        if seconds is None:
            train(config, run, verbose=2)
            seconds = json.loads((run / "summary.json").read_text())["seconds"]
        else:
            print(f"{name}: reusing the finished run in {run}", flush=True)
        report = evaluate_run(run, split="test", calibrate=True, objective="average_accuracy")
        rows = report["attributes"]
        accuracy[name] = with_mean(
            {**{r["attribute"]: r["average_accuracy"] for r in rows}, "seconds": seconds})
        precision[name] = with_mean(
            {**{r["attribute"]: r["average_precision"] for r in rows}, "seconds": seconds})
        print(f"{name}: trained in {seconds:.0f} s; test eq. (2): "
              + json.dumps({k: round(v, 3) for k, v in accuracy[name].items()}), flush=True)
        output.mkdir(parents=True, exist_ok=True)
        (output / "table.json").write_text(json.dumps({"average_accuracy": accuracy,
                                                       "average_precision": precision}, indent=2))
    for name, row in baseline_scores(base, "test").items():
        accuracy[name] = with_mean(row)
    labels = {**LABELS, "default": LABELS["default"].format(loss=loss_name(base))}
    print_table("Test split, eq. (2) average accuracy (kattr: thresholds calibrated on val):",
                accuracy, labels)
    print_table("Test split, average precision (micro over values):", precision, labels)
    output.mkdir(parents=True, exist_ok=True)
    (output / "table.json").write_text(json.dumps({"average_accuracy": accuracy,
                                                   "average_precision": precision}, indent=2))


if __name__ == "__main__":
    main()
