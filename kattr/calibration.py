"""Decision thresholds chosen on the validation split.

For every attribute the grid threshold that maximises the objective on the labelled validation
rows is kept: `f1` (micro F1 of the attribute) or `average_accuracy` (eq. 2). With
`per_value=True` each value's threshold is then tuned in turn (one coordinate-ascent pass,
other values fixed), still maximising the attribute's objective, so exclusive attributes are
scored after the same post-processing that serving applies. Ties go to the threshold closest to
the default (0.5 unless given). Attributes without labelled rows keep the default.

The default grid reaches down to 0.001: eq. (2) counts a labelled row without an answer as
wrong, so an exclusive attribute that every product has (product type over 129 values, whose
best score can fall below 0.05 when the model hesitates) answers its best value rather than
nothing; where not-applicable rows reward answering nothing, a higher threshold wins instead.

Example:
    >>> thresholds = calibrate_thresholds(val_targets, val_scores, config.taxonomy)
    >>> save_thresholds(thresholds, "runs/exp1/thresholds.json")
    >>> load_thresholds("runs/exp1/thresholds.json") == thresholds
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from kattr._atomic import write_text_atomic
from kattr.config import TaxonomyConfig
from kattr.metrics import average_accuracy, labelled_rows
from kattr.postprocess import decide

__all__ = ["OBJECTIVES", "calibrate_thresholds", "load_thresholds", "save_thresholds"]

DEFAULT_THRESHOLD = 0.5
DEFAULT_GRID = np.concatenate([[0.001, 0.01, 0.02, 0.03, 0.04], np.linspace(0.05, 0.95, 19)])


def _micro_f1(targets: np.ndarray, decisions: np.ndarray) -> float:
    truth = targets == 1
    true_positives = np.sum(truth & decisions)
    errors = np.sum(truth != decisions)
    return float(2 * true_positives / max(2 * true_positives + errors, 1))


OBJECTIVES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "f1": _micro_f1,
    "average_accuracy": average_accuracy,
}


def _best(candidates: np.ndarray, evaluate: Callable[[float], float], default: float) -> float:
    # Ties go to the candidate nearest the default: stable and no surprise when flat.
    order = np.argsort(np.abs(candidates - default), kind="stable")
    results = [(evaluate(float(candidates[i])), round(float(candidates[i]), 6)) for i in order]
    best_score = max(score for score, _ in results)
    return next(candidate for score, candidate in results if score == best_score)


def _calibrate_attribute(
    target: np.ndarray, score: np.ndarray, exclusive: bool, objective, per_value: bool, grid,
    default: float,
) -> float | list[float]:
    def evaluate(thresholds) -> float:
        return objective(target, decide(score, np.asarray(thresholds, score.dtype), exclusive))

    shared = _best(grid, evaluate, default)
    if not per_value:
        return shared
    thresholds = np.full(target.shape[1], shared)
    for value in range(target.shape[1]):
        def evaluate_value(candidate, value=value):
            trial = thresholds.copy()
            trial[value] = candidate
            return evaluate(trial)

        thresholds[value] = _best(grid, evaluate_value, default)
    return thresholds.tolist()


def calibrate_thresholds(
    targets: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray],
    taxonomy: TaxonomyConfig,
    objective: str = "f1",
    per_value: bool = False,
    grid: np.ndarray | None = None,
    default: float = DEFAULT_THRESHOLD,
) -> dict[str, float | list[float]]:
    """Chooses the threshold of every attribute (and optionally value) on validation data.

    Args:
        targets: attribute -> targets [rows, values] (1/0, -1 where missing).
        scores: attribute -> sigmoid scores [rows, values].
        taxonomy: the attributes (exclusive or not).
        objective: `f1` (micro F1) or `average_accuracy` (eq. 2).
        per_value: also tune one threshold per value.
        grid: candidate thresholds; defaults to 0.001, 0.01, ..., 0.04, 0.05, 0.10, ..., 0.95.
        default: threshold of attributes without labelled rows; ties go to the candidate
            nearest to it.

    Returns:
        attribute -> a threshold, or a list of per-value thresholds with `per_value`; the
        format `kattr.postprocess.thresholds_for` accepts.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}. Received: {objective!r}")
    grid = DEFAULT_GRID if grid is None else np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or np.any((grid <= 0) | (grid >= 1)):
        raise ValueError(f"grid must be a non-empty list of numbers in (0, 1). Received: {grid}")
    result = {}
    for attribute in taxonomy.attributes:
        target = np.asarray(targets[attribute.name])
        keep = labelled_rows(target)
        if not keep.any():
            count = len(attribute.values)
            result[attribute.name] = [default] * count if per_value else default
            continue
        score = np.asarray(scores[attribute.name], dtype=np.float32)[keep]
        result[attribute.name] = _calibrate_attribute(
            target[keep], score, attribute.exclusive, OBJECTIVES[objective], per_value, grid,
            default,
        )
    return result


def save_thresholds(thresholds: Mapping[str, float | list[float]], path: str | os.PathLike) -> None:
    """Writes thresholds as JSON, atomically (temporary file, then rename)."""
    write_text_atomic(path, json.dumps(dict(thresholds), indent=2) + "\n")


def load_thresholds(path: str | os.PathLike) -> dict[str, float | list[float]]:
    """Reads thresholds written by `save_thresholds`, checking every value is in (0, 1)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read thresholds ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object attribute -> threshold(s)")
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 1 for v in values
        ):
            raise ValueError(
                f"{path}: {name}: expected a number or a list of numbers in (0, 1). "
                f"Received: {value!r}"
            )
    return data
