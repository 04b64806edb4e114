"""The one reading of an image size: an int (a square) or ``[height, width]``.

Configs (`data.image_size`), `kattr.json` and the image functions all take either form; this
turns both into a ``(height, width)`` tuple. Plain Python, so light readers (the client) can
use it without TensorFlow.

Example:
    >>> as_image_shape(64)
    (64, 64)
    >>> as_image_shape([128, 100])
    (128, 100)
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["as_image_shape"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_image_shape(value: Any, key: str = "image_size", minimum: int = 1) -> tuple[int, int]:
    """``(height, width)`` of an image size given as an int (a square) or a pair.

    Args:
        value: an int, or a list or tuple ``[height, width]`` of ints.
        key: the name used in the error message, e.g. `data.image_size`.
        minimum: the smallest side accepted.

    Returns:
        The tuple ``(height, width)`` of Python ints.

    Raises:
        ValueError: `value` is neither form, or a side is below `minimum`.

    Example:
        >>> as_image_shape((80, 60), key="image_size")
        (80, 60)
    """
    if _is_int(value):
        shape = (int(value), int(value))
    elif isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_int, value)):
        shape = (int(value[0]), int(value[1]))
    else:
        raise ValueError(
            f"{key}: expected an integer (the side of a square) or [height, width] of two "
            f"integers. Received: {value!r}"
        )
    if min(shape) < minimum:
        raise ValueError(f"{key}: expected every side >= {minimum}. Received: {value!r}")
    return shape
