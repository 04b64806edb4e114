"""How much of a heatmap falls inside known evidence boxes (energy-based pointing game).

The share of heatmap mass inside the boxes (Wang et al., 2020, Score-CAM, section 5.2) is
compared with the boxes' share of the image area: a map that ignores the image scores about the
area share, a map that points at the evidence scores clearly above it.

Example:
    >>> heatmap = np.zeros((64, 64)); heatmap[20:40, 10:30] = 1.0
    >>> mass_inside(heatmap, [[10, 20, 30, 40]]), area_share((64, 64), [[10, 20, 30, 40]])
    (1.0, 0.09765625)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["area_share", "box_mask", "mass_inside"]

Box = Sequence[int]


def box_mask(shape: tuple[int, int], boxes: Sequence[Box]) -> np.ndarray:
    """Boolean mask [height, width] of the union of `[x0, y0, x1, y1]` boxes (x1, y1 exclusive).

    Example:
        >>> box_mask((4, 4), [[0, 0, 2, 1]]).sum()
        2
    """
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        if len(box) != 4:
            raise ValueError(f"boxes: expected [x0, y0, x1, y1] per box. Received: {box!r}")
        x0, y0, x1, y1 = (int(v) for v in box)
        mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return mask


def area_share(shape: tuple[int, int], boxes: Sequence[Box]) -> float:
    """The share of the image area covered by the boxes (their union)."""
    return float(box_mask(shape, boxes).mean())


def mass_inside(heatmap: np.ndarray, boxes: Sequence[Box]) -> float:
    """The share of the heatmap's mass inside the boxes; NaN for an all-zero heatmap.

    Args:
        heatmap: non-negative map [height, width] in image pixels.
        boxes: evidence boxes `[x0, y0, x1, y1]` in the same pixels.
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    total = heatmap.sum()
    if total <= 0:
        return float("nan")
    return float(heatmap[box_mask(heatmap.shape, boxes)].sum() / total)
