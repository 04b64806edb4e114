"""The CSV tables of a curation run: `duplicates.csv` and `removed.csv`.

Example:
    >>> write_manifest(removed_table(frame, {4: ("truncated", "JPEG decode failed")}), path)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kattr.curation.conflicts import Resolution
from kattr.curation.duplicates import hamming_distances, pixel_differences
from kattr.curation.image_checks import THUMBNAIL_SIDE, ImageRecord

__all__ = ["duplicates_table", "removed_table", "thumbnail_array"]


def thumbnail_array(records: dict[int, ImageRecord], rows: np.ndarray) -> np.ndarray:
    """Stacks the thumbnails of `rows` into uint8 [rows, side, side, 3]."""
    side = THUMBNAIL_SIDE
    thumbnails = np.zeros((len(rows), side, side, 3), dtype=np.uint8)
    for index, row in enumerate(rows):
        thumbnails[index] = np.frombuffer(records[row].thumbnail, np.uint8).reshape(side, side, 3)
    return thumbnails


def duplicates_table(
    resolution: Resolution,
    frame: pd.DataFrame,
    records: dict[int, ImageRecord],
    split_of_row: dict[int, str],
    image_column: str,
) -> pd.DataFrame:
    """`duplicates.csv`: one line per group member with its action, distances and split.

    Distances are to the kept image, or to the first member for a group dropped for conflicts.
    """
    table = []
    for group in resolution.groups:
        reference = group.kept_row if group.kept_row is not None else group.rows[0]
        rows = np.array(group.rows)
        hashes = np.array([records[row].perceptual_hash for row in rows], dtype=np.uint64)
        distances = hamming_distances(records[reference].perceptual_hash, hashes)
        thumbnails = thumbnail_array(records, np.append(rows, reference))
        pairs = np.stack([np.arange(len(rows)), np.full(len(rows), len(rows))], axis=1)
        pixel_differences_to_kept = pixel_differences(thumbnails, pairs)
        exact = len({records[row].content_hash for row in group.rows}) == 1
        for row, distance, pixel_difference in zip(
            group.rows, distances, pixel_differences_to_kept, strict=True
        ):
            table.append({
                "group": group.group,
                "kind": "exact" if exact else "near",
                "row": row + 1,
                image_column: frame.iat[row, frame.columns.get_loc(image_column)],
                "action": "kept" if row == group.kept_row
                else resolution.removed[row][0],
                "distance_to_kept": int(distance),
                "pixel_difference_to_kept": round(float(pixel_difference), 2),
                "same_content_as_kept": records[row].content_hash
                == records[reference].content_hash,
                "conflicting_columns": ";".join(group.conflicts),
                "split": split_of_row.get(group.kept_row, ""),
            })
    columns = ["group", "kind", "row", image_column, "action", "distance_to_kept",
               "pixel_difference_to_kept", "same_content_as_kept", "conflicting_columns", "split"]
    return pd.DataFrame(table, columns=columns)


def removed_table(frame: pd.DataFrame, removed: dict[int, tuple[str, str]]) -> pd.DataFrame:
    """`removed.csv`: 1-based row, reason and detail, then the row's original cells."""
    rows = sorted(removed)
    reasons = pd.DataFrame(
        {"row": [r + 1 for r in rows], "reason": [removed[r][0] for r in rows],
         "detail": [removed[r][1] for r in rows]}
    )
    original = frame.iloc[rows].reset_index(drop=True)
    # Never hide an input column: ours take a prefix if the manifest uses the same name.
    reasons = reasons.rename(columns={c: f"curation_{c}" for c in reasons if c in original})
    return pd.concat([reasons, original], axis=1)
