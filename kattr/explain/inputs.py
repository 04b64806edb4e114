"""Reading image files for explanation: decoded and resized as in training, bad files reported.

Example:
    >>> loaded = read_images(["a.jpg", "broken.jpg"], size=64)
    >>> loaded.images.shape, loaded.paths, loaded.failures
    ((1, 64, 64, 3), ['a.jpg'], [('broken.jpg', 'cannot decode: ...')])
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from kattr._image_shape import as_image_shape
from kattr.images import decode_and_resize

__all__ = ["LoadedImages", "read_images"]


@dataclass
class LoadedImages:
    """Images that decoded, and the files that did not.

    Args:
        images: float32 [count, height, width, 3] in [0, 255] (the model's input).
        paths: the file of each image, in input order.
        failures: (file, reason) of each file that could not be read or decoded.
    """

    images: np.ndarray
    paths: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _reason(error: tf.errors.OpError) -> str:
    """The op error's message without TensorFlow's function and op decorations."""
    message = (error.message or type(error).__name__).strip().splitlines()[0]
    message = re.sub(r"\{\{.*?\}\}\s*", "", message)
    return re.sub(r"\s*\[Op:.*$", "", message) or type(error).__name__


def read_images(paths: Sequence[str | os.PathLike], size: int | Sequence[int]) -> LoadedImages:
    """Reads, decodes and resizes image files with `kattr.images.decode_and_resize`.

    A missing, unreadable or undecodable file is recorded in `failures` and skipped.

    Args:
        paths: the image files.
        size: an int (a square) or `(height, width)`, e.g. `Explainer.image_shape`.
    """
    shape = as_image_shape(size, "size")
    images, kept, failures = [], [], []
    for path in paths:
        path = str(path)
        try:
            images.append(decode_and_resize(tf.io.read_file(path), shape).numpy())
        except tf.errors.NotFoundError:
            failures.append((path, "file not found"))
            continue
        except tf.errors.OpError as error:
            failures.append((path, f"cannot read or decode: {_reason(error)}"))
            continue
        kept.append(path)
    stacked = np.stack(images) if images else np.zeros((0, *shape, 3), np.float32)
    return LoadedImages(images=stacked, paths=kept, failures=failures)
