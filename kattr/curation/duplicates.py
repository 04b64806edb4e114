"""Groups exact duplicates (same content hash) and near duplicates (close perceptual hashes).

Near duplicates are pairs of 64-bit perceptual hashes at Hamming distance <= `max_distance`,
found with multi-index hashing: the hash is cut into `max_distance + 1` blocks, and two hashes
that close must agree exactly on at least one block (pigeonhole), so only images sharing a
block value are compared. Groups are the connected components of the duplicate pairs.

Example:
    >>> groups = duplicate_groups(["a", "a", "b", "c"], [0, 0, 0b1, 2**64 - 1], max_distance=2)
    >>> groups.tolist()  # rows 0-2 together (exact, then near); row 3 alone
    [0, 0, 0, -1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["HASH_BITS", "duplicate_groups", "hamming_distances", "near_duplicate_pairs"]

HASH_BITS = 64
# Runs of hashes sharing a block value are compared all-pairs in slices of this many rows.
_SLICE_ROWS = 1024


def hamming_distances(hash_value: int, hashes: np.ndarray) -> np.ndarray:
    """Bit differences between one 64-bit hash and an array of them.

    Example:
        >>> hamming_distances(0b1011, np.array([0b1011, 0b0000], dtype=np.uint64)).tolist()
        [0, 3]
    """
    return np.bitwise_count(np.uint64(hash_value) ^ hashes.astype(np.uint64)).astype(np.int64)


def _pairs_within(members: np.ndarray, hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """All pairs (i < j) of `members` whose hashes differ by at most `max_distance` bits."""
    found = []
    values = hashes[members]
    for start in range(0, len(members), _SLICE_ROWS):
        block = values[start : start + _SLICE_ROWS]
        distances = np.bitwise_count(block[:, None] ^ values[None, :])
        rows, columns = np.nonzero(distances <= max_distance)
        later = columns > rows + start
        found.append(np.stack([members[rows[later] + start], members[columns[later]]], axis=1))
    return np.concatenate(found)


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Index pairs [k, 2] of hashes at Hamming distance <= `max_distance` (each pair once).

    Example:
        >>> near_duplicate_pairs(np.array([0, 1, 255], dtype=np.uint64), 1).tolist()
        [[0, 1]]
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    if max_distance < 0:
        raise ValueError(
            f"curation.near_duplicate_distance must be >= 0. Received: {max_distance}"
        )
    blocks = min(max_distance + 1, HASH_BITS)
    bounds = np.linspace(0, HASH_BITS, blocks + 1).astype(np.uint64)
    found = [np.empty((0, 2), dtype=np.int64)]
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        mask = np.uint64((1 << int(high - low)) - 1)
        keys = (hashes >> low) & mask
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        run_starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
        run_stops = np.append(run_starts[1:], len(order))
        for start, stop in zip(run_starts, run_stops, strict=True):
            if stop - start > 1:
                found.append(_pairs_within(order[start:stop], hashes, max_distance))
    pairs = np.concatenate(found).astype(np.int64)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0)


def duplicate_groups(
    content_hashes: Sequence[str], perceptual_hashes: Sequence[int], max_distance: int
) -> np.ndarray:
    """Duplicate group of every row: 0, 1, ... in order of first row; -1 for a unique image.

    Args:
        content_hashes: exact-content hash per row; equal hashes are exact duplicates.
        perceptual_hashes: 64-bit perceptual hash per row.
        max_distance: largest Hamming distance for near duplicates; 0 groups exact ones only.

    Returns:
        int64 array with one group id per row.
    """
    contents, unique_contents = pd.factorize(pd.Series(list(content_hashes), dtype=object))
    count = len(unique_contents)
    edges = np.empty((0, 2), dtype=np.int64)
    if max_distance > 0 and count > 1:
        first_row = pd.Series(np.arange(len(contents))).groupby(contents).first().to_numpy()
        hashes = np.array([perceptual_hashes[row] for row in first_row], dtype=np.uint64)
        edges = near_duplicate_pairs(hashes, max_distance)
    graph = coo_matrix(
        (np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(count, count)
    )
    _, components = connected_components(graph, directed=False)
    row_components = components[contents]
    sizes = np.bincount(row_components, minlength=count)
    grouped = sizes[row_components] > 1
    groups = np.full(len(contents), -1, dtype=np.int64)
    if grouped.any():
        # factorize numbers the groups in order of their first row.
        groups[grouped], _ = pd.factorize(pd.Series(row_components[grouped]))
    return groups
