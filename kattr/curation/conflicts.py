"""Keeps one image per duplicate group and reconciles the group's labels.

Per label column the group's label is what its members agree on (blank members abstain).
Members that disagree make a conflict, settled by the policy:
- `keep_majority`: the most common label (ties go to the kept image's own label, else to the
  earliest row's);
- `mark_missing`: the column is blanked on the kept image;
- `drop`: the whole group is removed.
The kept image is the group's leader (see `duplicate_groups`).

Example:
    >>> resolution = resolve_duplicates(frame, groups, kept, ["category", "colour"], "|",
    ...                                 "keep_majority")
    >>> resolution.removed[3]
    ('duplicate', 'duplicate of row 1 (group 0)')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kattr.curation.errors import CurationError
from kattr.labels import cell_values, is_blank

__all__ = ["CONFLICT_POLICIES", "DuplicateGroup", "Resolution", "resolve_duplicates"]

CONFLICT_POLICIES = ("keep_majority", "drop", "mark_missing")


@dataclass
class DuplicateGroup:
    """One group of exact or near duplicate images.

    Attributes:
        group: group id (0, 1, ... in order of first row).
        rows: row positions of the members, in manifest order.
        kept_row: the member kept, or None when the group was dropped.
        conflicts: label column -> the distinct labels its members gave.
    """

    group: int
    rows: list[int]
    kept_row: int | None
    conflicts: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Resolution:
    """Result of `resolve_duplicates`.

    Attributes:
        frame: the manifest with the kept images' labels reconciled.
        groups: every duplicate group.
        removed: row position -> (reason, detail) for each removed member.
        filled_cells: blank cells of kept images filled with the label other members agree on.
    """

    frame: pd.DataFrame
    groups: list[DuplicateGroup]
    removed: dict[int, tuple[str, str]]
    filled_cells: int = 0


def _group_label(cells: list, kept_index: int, separator: str) -> tuple[str | None, list[str]]:
    """The label the group agrees on (or its majority label) and the distinct labels given."""
    keys = [frozenset(cell_values(cell, separator)) or None for cell in cells]
    counts = Counter(key for key in keys if key is not None)
    if not counts:
        return None, []
    first_cell = {}
    for key, cell in zip(keys, cells, strict=True):
        first_cell.setdefault(key, cell)
    distinct = [first_cell[key] for key in counts]
    best = max(counts.values())
    tied = [key for key in counts if counts[key] == best]
    winner = keys[kept_index] if keys[kept_index] in tied else tied[0]
    return first_cell[winner], distinct


def resolve_duplicates(
    frame: pd.DataFrame,
    groups: np.ndarray,
    kept_rows: np.ndarray,
    columns: list[str],
    separator: str,
    policy: str,
) -> Resolution:
    """Keeps one member per group and reconciles labels per `policy`.

    Args:
        frame: canonical manifest (see `clean_labels`); not modified.
        groups: group id per row, -1 outside any group (see `duplicate_groups`).
        kept_rows: the row kept per group id.
        columns: the label columns compared (category and attributes).
        separator: separator of multi-valued cells.
        policy: one of `CONFLICT_POLICIES`.
    """
    if policy not in CONFLICT_POLICIES:
        raise CurationError(
            f"curation.conflict_policy must be one of {list(CONFLICT_POLICIES)}. "
            f"Received: {policy!r}"
        )
    frame = frame.copy()
    positions = {column: frame.columns.get_loc(column) for column in columns}
    members = pd.Series(np.arange(len(groups)))[groups >= 0].groupby(groups[groups >= 0])
    resolved, removed, filled = [], {}, 0
    for group_id, rows in members:
        rows = rows.tolist()
        kept = int(kept_rows[group_id])
        group = DuplicateGroup(int(group_id), rows, kept)
        updates = {}
        for column in columns:
            cells = [frame.iat[row, positions[column]] for row in rows]
            label, distinct = _group_label(cells, rows.index(kept), separator)
            if len(distinct) > 1:
                group.conflicts[column] = distinct
                if policy == "mark_missing":
                    label = None
            updates[column] = label
        if group.conflicts and policy == "drop":
            group.kept_row = None
            columns_text = ", ".join(group.conflicts)
            for row in rows:
                removed[row] = (
                    "conflicting_duplicates",
                    f"group {group.group} disagrees on {columns_text}",
                )
        else:
            for column, label in updates.items():
                current = frame.iat[kept, positions[column]]
                filled += label is not None and is_blank(current) and column not in group.conflicts
                frame.iat[kept, positions[column]] = label
            for row in rows:
                if row != kept:
                    detail = f"duplicate of row {kept + 1} (group {group.group})"
                    removed[row] = ("duplicate", detail)
        resolved.append(group)
    return Resolution(frame, resolved, removed, int(filled))
