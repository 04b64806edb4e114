"""Groups exact duplicates (same content hash) and near duplicates of each image.

Two images are near duplicates when
1. their 64-bit perceptual hashes differ in at most `max_distance` bits (candidates), and
2. their 16x16 RGB thumbnails agree once brightness and contrast are matched: the mean
   absolute residual of the least-squares fit `other = gain * image + offset` (both ways,
   pixels that are near-white in both ignored) is at most `MAX_PIXEL_DIFFERENCE` grey levels.

The second test exists because the perceptual hash is computed on grey levels and low
frequencies: on catalog photos (one product on a white background) it cannot tell a red shirt
from the same shirt in blue, or one nail-polish bottle from another. Re-encoding, resizing,
noise and brightness or contrast changes pass it; a change of colour does not.

Candidate pairs are found with multi-index hashing: the hash is cut into `max_distance + 1`
blocks, and two hashes that close must agree exactly on one block (pigeonhole), so only images
sharing a block value are compared. Groups are formed greedily around leaders, the largest
image first: a leader takes every ungrouped near duplicate of itself. So every member is a
near duplicate of its group's leader (the image kept), and no two leaders are near duplicates.

Example:
    >>> found = duplicate_groups(content_hashes, perceptual_hashes, thumbnails, areas, 4)
    >>> found.groups[:4].tolist(), found.kept.tolist()[:1]  # rows 0 and 2 are duplicates
    ([0, -1, 0, -1], [2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from kattr.curation.errors import CurationError

__all__ = [
    "HASH_BITS",
    "MAX_PIXEL_DIFFERENCE",
    "DuplicateGroups",
    "duplicate_groups",
    "hamming_distances",
    "near_duplicate_pairs",
    "pixel_differences",
]

HASH_BITS = 64
# Grey levels (0-255). Measured on the fashion-products sample: JPEG quality 50, resizing to
# 0.8x, noise (sigma 10) and +10% brightness or contrast stay below it for 99-100% of images
# (as does JPEG quality 50 of saturated drawn shapes), while 48 of the 5,706 pairs within
# hash distance 4 that are labelled with different colours pass it, most of them the same
# photo listed twice.
MAX_PIXEL_DIFFERENCE = 8.0
# Pixels with every channel at or above this level in both thumbnails are background.
_WHITE_LEVEL = 240
# Brightness/contrast changes are gains in this range; beyond it the fit is not trusted.
_GAIN_RANGE = (0.5, 2.0)
# Runs of hashes sharing a block value are compared all-pairs in slices of this many rows.
_SLICE_ROWS = 1024
_PAIRS_PER_BATCH = 1024


@dataclass
class DuplicateGroups:
    """Duplicate groups of a list of images.

    Attributes:
        groups: int64 group id per image: 0, 1, ... in order of first image; -1 if unique.
        kept: the image kept (the group's leader) per group id.
    """

    groups: np.ndarray
    kept: np.ndarray


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
        raise CurationError(
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


def _fit_residual(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean absolute residual of the weighted least-squares fit target ~ gain * source + offset."""
    total = weights.sum(axis=1)
    mean_source = (weights * source).sum(axis=1) / total
    mean_target = (weights * target).sum(axis=1) / total
    centred = source - mean_source[:, None]
    variance = (weights * centred**2).sum(axis=1)
    covariance = (weights * centred * (target - mean_target[:, None])).sum(axis=1)
    gain = np.divide(covariance, variance, out=np.ones_like(variance), where=variance > 0)
    gain = np.where((gain >= _GAIN_RANGE[0]) & (gain <= _GAIN_RANGE[1]), gain, 1.0)
    offset = mean_target - gain * mean_source
    residual = np.abs(target - gain[:, None] * source - offset[:, None])
    return (weights * residual).sum(axis=1) / total


def pixel_differences(thumbnails: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Thumbnail difference of each pair after matching brightness and contrast (both ways).

    Args:
        thumbnails: uint8 [images, side, side, 3].
        pairs: index pairs [k, 2].

    Returns:
        float64 [k], in grey levels; 0 for identical thumbnails.
    """
    flat = thumbnails.reshape(len(thumbnails), -1, 3)
    differences = np.zeros(len(pairs))
    for start in range(0, len(pairs), _PAIRS_PER_BATCH):
        batch = pairs[start : start + _PAIRS_PER_BATCH]
        first = flat[batch[:, 0]].astype(np.float32)
        second = flat[batch[:, 1]].astype(np.float32)
        background = (first.min(axis=2) >= _WHITE_LEVEL) & (second.min(axis=2) >= _WHITE_LEVEL)
        # All-background pairs (blank images) are compared on every pixel.
        background[background.all(axis=1)] = False
        weights = np.repeat(~background, 3, axis=1).astype(np.float32)
        first, second = first.reshape(len(batch), -1), second.reshape(len(batch), -1)
        differences[start : start + len(batch)] = np.maximum(
            _fit_residual(first, second, weights), _fit_residual(second, first, weights)
        )
    return differences


def _leaders(count: int, edges: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Leader of every node: nodes in `priority` order take their ungrouped neighbours."""
    leader = np.arange(count)
    if len(edges) == 0:
        return leader
    both = np.concatenate([edges, edges[:, ::-1]])
    adjacency = csr_matrix((np.ones(len(both), dtype=np.int8), (both[:, 0], both[:, 1])),
                           shape=(count, count))
    grouped = np.zeros(count, dtype=bool)
    for node in priority[np.diff(adjacency.indptr)[priority] > 0]:
        if grouped[node]:
            continue
        neighbours = adjacency.indices[adjacency.indptr[node] : adjacency.indptr[node + 1]]
        free = neighbours[~grouped[neighbours]]
        leader[free] = node
        grouped[free] = True
        grouped[node] = True
    return leader


def duplicate_groups(
    content_hashes: Sequence[str],
    perceptual_hashes: Sequence[int],
    thumbnails: np.ndarray,
    areas: np.ndarray,
    max_distance: int,
) -> DuplicateGroups:
    """Groups exact and near duplicates; the largest image (earliest on ties) leads a group.

    Args:
        content_hashes: exact-content hash per image; equal hashes are exact duplicates.
        perceptual_hashes: 64-bit perceptual hash per image.
        thumbnails: uint8 [images, side, side, 3] RGB thumbnails.
        areas: pixels per image.
        max_distance: largest Hamming distance for near duplicates; 0 groups exact ones only.
    """
    contents, unique_contents = pd.factorize(pd.Series(list(content_hashes), dtype=object))
    count = len(unique_contents)
    first_image = pd.Series(np.arange(len(contents))).groupby(contents).first().to_numpy()
    edges = np.empty((0, 2), dtype=np.int64)
    if max_distance > 0 and count > 1:
        hashes = np.array([perceptual_hashes[i] for i in first_image], dtype=np.uint64)
        candidates = near_duplicate_pairs(hashes, max_distance)
        close = pixel_differences(np.asarray(thumbnails)[first_image], candidates)
        edges = candidates[close <= MAX_PIXEL_DIFFERENCE]
    areas = np.asarray(areas)
    priority = np.lexsort((first_image, -areas[first_image])) if count else first_image
    leader = _leaders(count, edges, priority)[contents] if count else contents
    sizes = np.bincount(leader, minlength=count)
    grouped = sizes[leader] > 1
    groups = np.full(len(contents), -1, dtype=np.int64)
    kept = np.empty(0, dtype=np.int64)
    if grouped.any():
        # factorize numbers the groups in order of their first image.
        groups[grouped], leaders = pd.factorize(pd.Series(leader[grouped]))
        kept = first_image[np.asarray(leaders)]
    return DuplicateGroups(groups, kept)
