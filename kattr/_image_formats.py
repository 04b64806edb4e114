"""Which image files training can read: the one rule shared by `kattr-validate` and curation.

Training decodes with `tf.io.decode_image` (see `kattr.images.decode_image`), which reads
JPEG, PNG, GIF and BMP by their content. Pillow, which both checkers use to open files, names
formats differently in one case: a multi-picture JPEG (MPO, written by many cameras and phones:
a JPEG with extra pictures appended) is reported as "MPO", yet TensorFlow decodes it as the
JPEG it starts with. Pillow also opens formats TensorFlow cannot (WebP, TIFF, ...), which are
rejected. Plain Python (no TensorFlow), so the checkers and their worker processes stay light.

Example:
    >>> is_training_format("MPO"), is_training_format("WEBP")
    (True, False)
"""

from __future__ import annotations

__all__ = ["TRAINING_FORMATS", "is_training_format"]

# Pillow format names (`Image.format`) whose files `tf.io.decode_image` decodes.
TRAINING_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF")


def is_training_format(pillow_format: str | None) -> bool:
    """True when Pillow's format name is one training decodes (None, unknown: False)."""
    return pillow_format in TRAINING_FORMATS
