"""Imbalance handling on the training split: category down-sampling and rare-value over-sampling.

- Category cap (Flipkart paper): keep at most `category_cap` rows of each category.
- Over-sampling (Rakuten write-up): rows holding a value seen fewer than `oversample_below`
  times are repeated (each copy is augmented differently by the pipeline), at most
  `oversample_max_repeats` copies of a row.

Example:
    >>> plan = plan_sampling(categories, targets, SamplingConfig(category_cap=500), seed=0)
    >>> train = train.take(plan.indices)
    >>> plan.report["rows_after"]
    3120
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kattr.config import SamplingConfig, TaxonomyConfig

__all__ = ["SamplingPlan", "plan_sampling"]


@dataclass
class SamplingPlan:
    """Row indices to train on (with repeats) and what each step did."""

    indices: np.ndarray
    report: dict


def _value_counts(
    targets: dict[str, np.ndarray], taxonomy: TaxonomyConfig, rows: np.ndarray
) -> dict:
    return {
        attribute.name: {
            value: int((targets[attribute.name][rows, j] == 1).sum())
            for j, value in enumerate(attribute.values)
        }
        for attribute in taxonomy.attributes
    }


def _category_counts(categories: np.ndarray, rows: np.ndarray) -> dict:
    values, counts = np.unique(categories[rows], return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def _cap_categories(categories: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    keep = []
    for category in np.unique(categories):
        rows = np.flatnonzero(categories == category)
        if len(rows) > cap:
            rows = np.sort(rng.choice(rows, size=cap, replace=False))
        keep.append(rows)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=int)


def _repeats_for_rare_values(
    targets: dict[str, np.ndarray], rows: np.ndarray, below: int, max_repeats: int
) -> np.ndarray:
    """Copies of each row: enough to lift its rarest value towards `below`, capped."""
    copies = np.ones(len(rows), dtype=int)
    for target in targets.values():
        positives = target[rows] == 1
        counts = positives.sum(axis=0)
        for j in np.flatnonzero((counts > 0) & (counts < below)):
            wanted = min(int(np.ceil(below / counts[j])), max_repeats)
            holders = positives[:, j]
            copies[holders] = np.maximum(copies[holders], wanted)
    return copies


def plan_sampling(
    categories: np.ndarray,
    targets: dict[str, np.ndarray],
    config: SamplingConfig,
    taxonomy: TaxonomyConfig,
    seed: int = 0,
) -> SamplingPlan:
    """Chooses the training rows after down-sampling and over-sampling.

    Args:
        categories: canonical category per training row (None/"" where blank).
        targets: attribute -> [rows, values] training targets.
        config: the `train.sampling` section.
        taxonomy: for value names in the report.
        seed: seed of the down-sampling draw.
    """
    categories = np.asarray(["" if c is None else str(c) for c in categories])
    rng = np.random.default_rng(seed)
    rows = np.arange(len(categories))
    report: dict = {
        "rows_before": len(rows),
        "categories_before": _category_counts(categories, rows),
        "values_before": _value_counts(targets, taxonomy, rows),
    }
    if config.category_cap is not None:
        rows = _cap_categories(categories, config.category_cap, rng)
    if config.oversample_below is not None:
        copies = _repeats_for_rare_values(
            targets, rows, config.oversample_below, config.oversample_max_repeats
        )
        report["rows_oversampled"] = int((copies > 1).sum())
        rows = np.repeat(rows, copies)
    report.update(
        rows_after=len(rows),
        categories_after=_category_counts(categories, rows),
        values_after=_value_counts(targets, taxonomy, rows),
    )
    return SamplingPlan(indices=rows, report=report)
