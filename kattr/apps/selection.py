"""Annotation queue: choose the images most worth labelling next (active learning).

Candidates are the rows with at least one blank cell of an attribute that applies to their
category (unlabelled or partially labelled products); the category is the catalog's, or the
predicted product type where the row has none (a blank category cell is itself a blank cell of
the product type). Each such cell gets an uncertainty in
[0, 1] from the model's scores, and a row's uncertainty is the mean (or max) over its blank
applicable cells:

- `entropy`: exclusive attributes, the entropy of the scores normalised into a distribution,
  divided by log(values); multi-label attributes, the mean binary entropy of the values (bits).
- `margin`: exclusive attributes, 1 - (best score - second best score); multi-label attributes,
  1 - the smallest distance of a value's score to its threshold (scaled to [0, 1]).

The `budget` most uncertain rows are chosen; with `diversify`, k-center greedy on the embeddings
(Sener and Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
ICLR 2018) picks them from a pool of the most uncertain `pool_factor * budget` rows, so that
near-identical products do not fill the queue. The rows already labelled (scored, with every
applicable cell filled) are the initial centres, so the queue spreads away from what annotators
have covered; without them the most uncertain row is the first pick. No row is picked twice,
even where embeddings coincide.

Example:
    >>> with Scorer.from_run("runs/shirts") as scorer:
    ...     result = select_manifest("catalog.csv", "queue.csv", scorer, budget=50,
    ...                              diversify=True)
    >>> result.queue[["image", "uncertainty", "rank"]].head(1)
                image  uncertainty  rank
    0  images/00412.jpg     0.93        1
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kattr.apps._cells import (
    applicability_categories,
    applicable_rows,
    blank_cells,
    check_columns,
    check_rows,
)
from kattr.apps.scoring import CatalogScores, ImageFailure, Scorer, manifest_images
from kattr.config import AttributeConfig
from kattr.labels import write_manifest

__all__ = [
    "AGGREGATES",
    "STRATEGIES",
    "SelectResult",
    "attribute_uncertainty",
    "k_center_greedy",
    "select",
    "select_manifest",
]

STRATEGIES = ("entropy", "margin")
AGGREGATES = ("mean", "max")
_EPSILON = 1e-7


@dataclass
class SelectResult:
    """The annotation queue.

    Args:
        queue: the chosen manifest rows (same columns, blank cells left to fill), in order,
            plus `uncertainty` and `rank` (1 = annotate first).
        rows: their 0-based positions in the manifest.
        candidates: rows that had a blank applicable cell and a scored image.
        failures: the images that could not be scored.
        output: the queue file written (None when only computed).
        model_version: the served model version that answered every row (server sources;
            None for the others).
    """

    queue: pd.DataFrame
    rows: np.ndarray
    candidates: int
    failures: list[ImageFailure] = field(default_factory=list)
    output: Path | None = None
    model_version: int | None = None


def attribute_uncertainty(
    scores: np.ndarray, attribute: AttributeConfig, thresholds: np.ndarray, strategy: str
) -> np.ndarray:
    """Uncertainty in [0, 1] per row of one attribute's scores [rows, values]."""
    scores = np.clip(np.asarray(scores, np.float64), _EPSILON, 1.0 - _EPSILON)
    count = scores.shape[1]
    if strategy == "entropy":
        if attribute.exclusive:
            if count < 2:
                return _binary_entropy(scores[:, 0])
            distribution = scores / scores.sum(axis=1, keepdims=True)
            return -(distribution * np.log(distribution)).sum(axis=1) / np.log(count)
        return _binary_entropy(scores).mean(axis=1)
    if strategy == "margin":
        if attribute.exclusive and count >= 2:
            best_two = -np.sort(-scores, axis=1)[:, :2]
            return 1.0 - (best_two[:, 0] - best_two[:, 1])
        thresholds = np.clip(np.asarray(thresholds, np.float64), _EPSILON, 1 - _EPSILON)
        distance = np.abs(scores - thresholds) / np.maximum(thresholds, 1.0 - thresholds)
        return 1.0 - distance.min(axis=1)
    raise ValueError(f"strategy must be one of {list(STRATEGIES)}. Received: {strategy!r}")


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def k_center_greedy(
    embeddings: np.ndarray, k: int, first: int = 0, centers: np.ndarray | None = None
) -> np.ndarray:
    """k-center greedy: each pick is the point farthest from everything picked so far.

    Args:
        embeddings: float [n, width] (L2-normalised: Euclidean order = cosine order).
        k: how many to pick (at most n).
        first: the first pick when `centers` is None (e.g. the most uncertain point).
        centers: float [m, width] of points already covered (e.g. labelled products); then the
            first pick is the farthest from them.

    Returns:
        int [min(k, n)]: distinct positions in pick order. A point is never picked twice:
        once every unpicked point coincides with a centre (identical embeddings), the rest
        follow in position order.

    Example:
        >>> k_center_greedy(np.array([[0.0], [0.1], [5.0], [10.0]]), 2)
        array([0, 3])
    """
    embeddings = np.asarray(embeddings, np.float64)
    count = len(embeddings)
    k = min(int(k), count)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if centers is not None and len(centers):
        distance = np.full(count, np.inf)
        for start in range(0, len(centers), 1024):
            block = np.asarray(centers[start:start + 1024], np.float64)
            distance = np.minimum(distance, _distances(embeddings, block).min(axis=1))
        picks = []
    else:
        if not 0 <= first < count:
            raise ValueError(f"first must be in [0, {count}). Received: first={first}")
        picks = [int(first)]
        distance = _distances(embeddings, embeddings[first:first + 1])[:, 0]
    # A picked point is out of the running: with coinciding points every distance reaches 0
    # and argmax would otherwise return a picked one again.
    distance[picks] = -np.inf
    while len(picks) < k:
        chosen = int(np.argmax(distance))
        picks.append(chosen)
        distance = np.minimum(distance, _distances(embeddings, embeddings[chosen:chosen + 1])[:, 0])
        distance[chosen] = -np.inf
    return np.array(picks, dtype=np.int64)


def _distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    squared = (points**2).sum(1)[:, None] + (centers**2).sum(1)[None, :] - 2 * points @ centers.T
    return np.sqrt(np.maximum(squared, 0.0))


def select(
    frame: pd.DataFrame,
    scores: CatalogScores,
    budget: int,
    strategy: str = "entropy",
    aggregate: str = "mean",
    diversify: bool = False,
    pool_factor: int = 3,
) -> SelectResult:
    """Chooses at most `budget` rows of `frame` to annotate next.

    Args:
        frame: the manifest, row `i` scored by `scores` row `i`.
        scores: from `Scorer.score_files` on the manifest's images.
        budget: the most rows to choose (>= 1).
        strategy: `entropy` or `margin` (see the module docstring).
        aggregate: `mean` or `max` over a row's blank applicable cells.
        diversify: pick with k-center greedy on the embeddings from the most uncertain
            `pool_factor * budget` candidates, the already-labelled rows as initial centres.
        pool_factor: size of the diversification pool, in budgets (>= 1).
    """
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
        raise ValueError(f"budget must be an integer >= 1. Received: budget={budget!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}. Received: {strategy!r}")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {list(AGGREGATES)}. Received: {aggregate!r}")
    if pool_factor < 1:
        raise ValueError(f"pool_factor must be >= 1. Received: {pool_factor}")
    check_rows(frame, scores)
    taxonomy = scores.taxonomy
    check_columns(frame, taxonomy)
    frame = frame.reset_index(drop=True)
    per_cell, open_cells = [], []
    category_index, _ = applicability_categories(frame, taxonomy, scores)
    for attribute in taxonomy.attributes:
        applies = applicable_rows(frame, taxonomy, attribute, category_index)
        open_cells.append(blank_cells(frame, attribute) & applies)
        values = np.nan_to_num(np.asarray(scores.scores[attribute.name]), nan=0.5)
        per_cell.append(
            attribute_uncertainty(values, attribute, scores.thresholds[attribute.name], strategy)
        )
    open_cells, per_cell = np.stack(open_cells, axis=1), np.stack(per_cell, axis=1)
    candidates = np.flatnonzero(open_cells.any(axis=1) & scores.scored)
    masked = np.where(open_cells, per_cell, np.nan)[candidates]
    with np.errstate(invalid="ignore"):
        uncertainty = np.nanmean(masked, axis=1) if aggregate == "mean" else np.nanmax(masked, 1)
    # Most uncertain first; ties keep manifest order.
    order = candidates[np.argsort(-uncertainty, kind="stable")]
    by_row = dict(zip(candidates.tolist(), uncertainty.tolist(), strict=True))
    if diversify and len(order) > budget:
        pool = order[: budget * pool_factor]
        labelled = _labelled_rows(frame, taxonomy, open_cells, scores)
        chosen = pool[k_center_greedy(scores.embeddings[pool], budget, first=0,
                                      centers=scores.embeddings[labelled])]
    else:
        chosen = order[:budget]
    queue = frame.iloc[chosen].copy()
    queue["uncertainty"] = [round(by_row[row], 6) for row in chosen]
    queue["rank"] = np.arange(1, len(chosen) + 1)
    return SelectResult(queue.reset_index(drop=True), chosen, len(candidates),
                        list(scores.failures))


def _labelled_rows(
    frame: pd.DataFrame, taxonomy, open_cells: np.ndarray, scores: CatalogScores
) -> np.ndarray:
    """Scored rows with no blank applicable cell and at least one filled attribute cell: the
    products already covered, which k-center greedy treats as initial centres."""
    filled = np.zeros(len(frame), dtype=bool)
    for attribute in taxonomy.attributes:
        filled |= ~blank_cells(frame, attribute)
    return np.flatnonzero(filled & ~open_cells.any(axis=1) & scores.scored)


def select_manifest(
    manifest: str | os.PathLike,
    output: str | os.PathLike,
    scorer: Scorer,
    budget: int,
    strategy: str = "entropy",
    aggregate: str = "mean",
    diversify: bool = False,
    pool_factor: int = 3,
    image_root: str | os.PathLike | None = None,
    image_column: str = "image",
    batch_size: int = 32,
) -> SelectResult:
    """Scores a manifest's images, chooses the rows to annotate and writes the queue atomically.

    The queue keeps the manifest's format (CSV or Parquet from `output`'s suffix) and columns,
    so annotators fill its blank cells and it can be merged back; `uncertainty` and `rank` are
    added. See `select` for the arguments.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"--budget must be an integer >= 1. Received: {budget!r}")
    if Path(output).resolve() == Path(manifest).resolve():
        raise ValueError(f"--output {output}: is the input manifest; choose another file")
    frame, paths = manifest_images(manifest, image_root, image_column)
    check_columns(frame, scorer.taxonomy, str(manifest))
    scores = scorer.score_files(paths, batch_size=batch_size)
    result = select(frame, scores, budget, strategy, aggregate, diversify, pool_factor)
    result.model_version = scores.source.get("version")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(result.queue, output)
    result.output = output
    return result
