"""Every number of a curation run as JSON-ready data: the content of `report.json`.

Example:
    >>> summary = build_summary(config, frame, cleaned, records, resolution, pruned, removed,
    ...                         splits, timing, label_states)
    >>> summary["rows"]["input"] == summary["rows"]["kept"] + summary["rows"]["removed"]
    True
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pandas as pd

from kattr.config import Config
from kattr.curation.conflicts import Resolution
from kattr.curation.duplicates import MAX_PIXEL_DIFFERENCE
from kattr.curation.image_checks import ImageRecord
from kattr.curation.label_values import CleanedLabels
from kattr.curation.rare_values import PrunedValues

__all__ = ["build_summary"]

_EXAMPLES_IN_REPORT = 20


def _invalid_examples(
    removed: dict[int, tuple[str, str]], reasons: set[str], frame: pd.DataFrame, image_column: str
) -> list[dict]:
    rows = [row for row in sorted(removed) if removed[row][0] in reasons][:_EXAMPLES_IN_REPORT]
    images = frame[image_column]
    return [{"row": row + 1, "image": str(images.iat[row]), "reason": removed[row][0],
             "detail": removed[row][1]} for row in rows]


def _conflict_examples(resolution: Resolution, frame: pd.DataFrame, image_column: str) -> list:
    images = frame[image_column]
    return [
        {"group": g.group, "images": [str(images.iat[row]) for row in g.rows],
         "labels": g.conflicts}
        for g in resolution.groups if g.conflicts
    ][:_EXAMPLES_IN_REPORT]


def build_summary(
    config: Config,
    frame: pd.DataFrame,
    cleaned: CleanedLabels,
    records: dict[int, ImageRecord],
    resolution: Resolution,
    pruned: PrunedValues,
    removed: dict[int, tuple[str, str]],
    splits: dict,
    timing: dict,
    label_states: list[dict],
) -> dict:
    """Every number of the run as JSON-ready data (the content of `report.json`).

    Args:
        config: the run's config.
        frame: the input manifest.
        cleaned: label canonicalisation (`clean_labels`).
        records: image record per checked row.
        resolution: duplicate groups and their resolution.
        pruned: rare values found.
        removed: row -> (reason, detail) of every removed row.
        splits: output of `share_differences`.
        timing: hashing throughput numbers.
        label_states: before/after label states (`write_before_after_stats`).
    """
    invalid_reasons = {r.reason for r in records.values() if r.reason is not None}
    by_reason = Counter(reason for reason, _ in removed.values())
    groups = resolution.groups
    exact = sum(len({records[row].content_hash for row in g.rows}) == 1 for g in groups)
    conflicts = Counter(column for g in groups for column in g.conflicts)
    curation = config.curation
    return {
        "input": {"manifest": str(config.manifest_path.resolve()),
                  "image_root": str(config.image_root.resolve())},
        "settings": dataclasses.asdict(curation),
        "rows": {
            "input": len(frame),
            "kept": len(frame) - len(removed),
            "removed": len(removed),
            "removed_by_reason": dict(by_reason.most_common()),
        },
        "unknown_values": {
            "cells": len(cleaned.unknown),
            "policy": config.data.on_unknown,
            "by_column": dict(Counter(column for _, column, _ in cleaned.unknown).most_common()),
        },
        "invalid_images": {
            "count": sum(by_reason[reason] for reason in invalid_reasons),
            "by_reason": {reason: by_reason[reason] for reason in sorted(invalid_reasons)},
            "examples": _invalid_examples(
                removed, invalid_reasons, frame, config.data.image_column
            ),
        },
        "duplicates": {
            "groups": len(groups),
            "exact_groups": exact,
            "near_groups": len(groups) - exact,
            "max_distance": curation.near_duplicate_distance,
            "max_pixel_difference": MAX_PIXEL_DIFFERENCE,
            "rows_in_groups": sum(len(g.rows) for g in groups),
            "largest_group": max((len(g.rows) for g in groups), default=0),
            "removed": by_reason["duplicate"],
            "conflict_groups": sum(bool(g.conflicts) for g in groups),
            "conflict_policy": curation.conflict_policy,
            "conflicts_by_column": dict(conflicts.most_common()),
            "dropped_for_conflicts": by_reason["conflicting_duplicates"],
            "filled_cells": resolution.filled_cells,
            "conflict_examples": _conflict_examples(
                resolution, frame, config.data.image_column
            ),
        },
        "merges": {
            "cells": sum(m.cells for m in cleaned.merges),
            "values": [dataclasses.asdict(m) for m in cleaned.merges],
        },
        "rare_values": {
            "min_count": curation.min_count,
            "policy": curation.rare_policy,
            "cells_changed": sum(r.cells for r in pruned.rare_values),
            "values": [dataclasses.asdict(r) for r in pruned.rare_values],
        },
        "splits": {
            "column": config.data.splits.column,
            "replaced_column": config.data.splits.column in frame.columns,
            "seed": config.data.splits.seed,
            "val_fraction": config.data.splits.val_fraction,
            "test_fraction": config.data.splits.test_fraction,
            "sizes": splits,
        },
        "hashing": timing,
        "label_states": label_states,
    }
