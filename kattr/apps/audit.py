"""Label audit: rank catalog cells that a confident prediction contradicts.

A labelled cell (known values, attribute applicable to the row's category: the catalog's, or
the predicted product type where the row has none) is suspect when the post-processed
prediction (`kattr.postprocess.decide`: calibrated thresholds, exclusivity, and `min_score`
when given) decides values and they differ from the catalog's. The category cell is audited
too, as the product type (`taxonomy.category_output`). Suspects are ranked by their evidence:

- `predicted_score`: the predicted value's score (exclusive attributes), or the probability of
  the predicted value set under the independent sigmoids (multi-label attributes);
- `catalog_score`: the same for the catalog's value (set);
- `margin = predicted_score - catalog_score`;
- `agreement`: the share of views (the image, and with test-time augmentation a mirrored and a
  centre-cropped copy) whose prediction is the same; 1 without augmentation;
- `evidence = margin * agreement`, the ranking key.

Example:
    >>> with Scorer.from_run("runs/shirts") as scorer:
    ...     result = audit_manifest("catalog.csv", "queue.csv", scorer, top=100, tta=True)
    >>> result.queue[["row", "attribute", "catalog_value", "predicted_value"]].head(1)
       row attribute catalog_value predicted_value
    0  412    colour           red            blue
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kattr.apps._cells import (
    applicability_categories,
    applicable_rows,
    catalog_sets,
    check_columns,
    check_min_score,
    check_rows,
    predicted_decisions,
)
from kattr.apps.scoring import VIEWS, CatalogScores, ImageFailure, Scorer, manifest_images
from kattr.config import AttributeConfig
from kattr.labels import write_manifest

__all__ = ["QUEUE_COLUMNS", "AuditResult", "audit", "audit_manifest"]

QUEUE_COLUMNS = [
    "rank", "row", "image", "attribute", "catalog_value", "predicted_value", "predicted_score",
    "catalog_score", "margin", "agreement", "evidence", "overlay",
]

_SCORE_COLUMNS = ["predicted_score", "catalog_score", "margin", "agreement", "evidence"]


@dataclass
class AuditResult:
    """The audit queue and what was checked.

    Args:
        queue: one row per suspect cell, best evidence first, with `QUEUE_COLUMNS`; `row` is
            the 1-based data row of the manifest.
        checked: attribute -> number of labelled cells compared with a prediction.
        failures: the images that could not be scored.
        output: the queue file written (None when only computed).
        model_version: the served model version that answered every row (server sources;
            None for the others).
    """

    queue: pd.DataFrame
    checked: dict[str, int]
    failures: list[ImageFailure] = field(default_factory=list)
    output: Path | None = None
    model_version: int | None = None


def _set_scores(scores: np.ndarray, sets: np.ndarray, exclusive: bool) -> np.ndarray:
    """[rows]: the score of each row's value set (see the module docstring)."""
    if exclusive:
        return np.where(sets, scores, -np.inf).max(axis=1)
    return np.where(sets, scores, 1.0 - scores).prod(axis=1)


def _attribute_suspects(
    frame: pd.DataFrame,
    scores: CatalogScores,
    attribute: AttributeConfig,
    min_score: float | None,
    views: Sequence[CatalogScores],
    category_index: np.ndarray,
) -> tuple[pd.DataFrame, int]:
    taxonomy = scores.taxonomy
    sets, known = catalog_sets(frame, attribute, taxonomy.separator)
    applies = applicable_rows(frame, taxonomy, attribute, category_index)
    auditable = known & applies & scores.scored
    values = np.asarray(scores.scores[attribute.name], np.float32)
    thresholds = scores.thresholds[attribute.name]
    decisions = predicted_decisions(values, thresholds, attribute, min_score)
    suspect = auditable & decisions.any(axis=1) & (decisions != sets).any(axis=1)
    agreeing = np.ones(len(frame))
    for view in views:
        view_decisions = predicted_decisions(
            view.scores[attribute.name], thresholds, attribute, min_score
        )
        agreeing += (view_decisions == decisions).all(axis=1)
    agreement = agreeing / (1 + len(views))
    rows = np.flatnonzero(suspect)
    clean = np.nan_to_num(values[rows], nan=0.0)
    predicted_score = _set_scores(clean, decisions[rows], attribute.exclusive)
    catalog_score = _set_scores(clean, sets[rows], attribute.exclusive)
    margin = predicted_score - catalog_score
    separator = taxonomy.separator
    table = pd.DataFrame({
        "row": rows + 1,
        "image": [scores.paths[i] for i in rows],
        "attribute": attribute.name,
        "catalog_value": [separator.join(np.array(attribute.values)[sets[i]]) for i in rows],
        "predicted_value": [
            separator.join(np.array(attribute.values)[decisions[i]]) for i in rows
        ],
        "predicted_score": predicted_score,
        "catalog_score": catalog_score,
        "margin": margin,
        "agreement": agreement[rows],
        "evidence": margin * agreement[rows],
    })
    return table, int(auditable.sum())


def audit(
    frame: pd.DataFrame,
    scores: CatalogScores,
    top: int | None = None,
    min_score: float | None = None,
    views: Sequence[CatalogScores] = (),
) -> AuditResult:
    """Ranks the labelled cells of `frame` that a confident prediction contradicts.

    Args:
        frame: the manifest, row `i` scored by `scores` row `i`.
        scores: from `Scorer.score_files` on the manifest's images.
        top: keep the `top` best-evidenced suspects (default: all).
        min_score: also require each predicted value's score to reach this (in (0, 1]).
        views: scores of augmented copies of the same images (test-time augmentation), for
            the `agreement` column.
    """
    check_min_score(min_score)
    check_rows(frame, scores)
    for view in views:
        check_rows(frame, view)
    if top is not None and top < 1:
        raise ValueError(f"top must be >= 1. Received: top={top}")
    check_columns(frame, scores.taxonomy)
    frame = frame.reset_index(drop=True)
    tables, checked = [], {}
    category_index, _ = applicability_categories(frame, scores.taxonomy, scores)
    for attribute in scores.taxonomy.attributes:
        table, count = _attribute_suspects(
            frame, scores, attribute, min_score, views, category_index
        )
        tables.append(table)
        checked[attribute.name] = count
    queue = pd.concat(tables, ignore_index=True)
    queue = queue.sort_values(
        ["evidence", "predicted_score", "row"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
    if top is not None:
        queue = queue.head(top)
    queue.insert(0, "rank", np.arange(1, len(queue) + 1))
    queue[_SCORE_COLUMNS] = queue[_SCORE_COLUMNS].astype(np.float64).round(4)
    queue["overlay"] = ""
    return AuditResult(queue[QUEUE_COLUMNS], checked, list(scores.failures))


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "value"


def write_overlays(
    queue: pd.DataFrame, scorer: Scorer, output_dir: str | os.PathLike, batch_size: int = 16
) -> list[str]:
    """Grad-CAM overlays of each queue row's predicted value (runs only); returns the paths.

    One PNG per row, `<rank>-row<row>-<attribute>-<value>.png`; a multi-label prediction shows
    its first value. Rows whose image cannot be decoded get no overlay ("").
    """
    from kattr.explain import Explainer, read_images, render_overlay

    if scorer.model is None:
        raise ValueError(
            "--explain needs a run directory source (--run): Grad-CAM needs the Keras model, "
            f"and the source is {scorer.source.get('kind')!r}"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    explainer = Explainer(scorer.model, scorer.taxonomy, scorer.thresholds, batch_size=batch_size)
    overlays = []
    for item in queue.itertuples(index=False):
        loaded = read_images([item.image], explainer.image_shape)
        if not loaded.paths:
            overlays.append("")
            continue
        value = item.predicted_value.split(scorer.taxonomy.separator)[0]
        explanation = explainer.explain(loaded.images, item.attribute, value)[0]
        name = f"{item.rank:04d}-row{item.row}-{item.attribute}-{_safe_name(value)}.png"
        overlays.append(str(render_overlay(loaded.images[0], explanation, output_dir / name)))
    return overlays


def audit_manifest(
    manifest: str | os.PathLike,
    output: str | os.PathLike,
    scorer: Scorer,
    top: int | None = None,
    min_score: float | None = None,
    tta: bool = False,
    explain_dir: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    image_column: str = "image",
    batch_size: int = 32,
) -> AuditResult:
    """Scores a manifest's images, audits its labels and writes the queue CSV atomically.

    Args:
        manifest: the CSV/Parquet manifest.
        output: the queue file (CSV or Parquet, from the suffix).
        scorer: the model source.
        top: keep the `top` best-evidenced suspects.
        min_score: also require each predicted value's score to reach this.
        tta: also score a mirrored and a centre-cropped copy of each image (`agreement`).
        explain_dir: write a Grad-CAM overlay per queue row here (run sources only).
        image_root: folder of relative image paths (default: the manifest's folder).
        image_column: the manifest's image column.
        batch_size: images per forward pass or request.
    """
    check_min_score(min_score)
    if top is not None and top < 1:
        raise ValueError(f"--top must be >= 1. Received: {top}")
    if explain_dir is not None and scorer.model is None:
        raise ValueError(
            "--explain needs a run directory source (--run): Grad-CAM needs the Keras model, "
            f"and the source is {scorer.source.get('kind')!r}"
        )
    frame, paths = manifest_images(manifest, image_root, image_column)
    check_columns(frame, scorer.taxonomy, str(manifest))
    scores = scorer.score_files(paths, batch_size=batch_size)
    views = [scorer.score_files(paths, batch_size=batch_size, view=v) for v in VIEWS] if tta else []
    result = audit(frame, scores, top=top, min_score=min_score, views=views)
    result.model_version = scores.source.get("version")
    if explain_dir is not None:
        result.queue["overlay"] = write_overlays(result.queue, scorer, explain_dir)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(result.queue, output)
    result.output = output
    return result
