"""Image decoding and resizing: the one implementation shared by training and the export.

Images become float32 RGB arrays [height, width, 3] with values in [0, 255] (EfficientNet
rescales inside the model). The aspect ratio is kept: the image is scaled to fit, then padded
with white, the usual background of catalog photos. The size is a square or `[height, width]`
(e.g. portrait catalog photos), as `data.image_size` gives it.

Example:
    >>> image = decode_image(tf.io.read_file("shirt.jpg"))
    >>> resize_to_fit(image, 128, 100).shape
    TensorShape([128, 100, 3])
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from kattr._image_shape import as_image_shape

__all__ = ["PAD_VALUE", "decode_and_resize", "decode_image", "resize_to_fit"]

PAD_VALUE = 255.0


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG, PNG, BMP or GIF (first frame) bytes into a uint8 RGB tensor [H, W, 3].

    Greyscale is expanded and alpha dropped. Raises `InvalidArgumentError` on bytes that are not
    an image, which the training pipeline catches and counts. `kattr._image_formats` names the
    formats this reads as Pillow reports them (multi-picture JPEGs are "MPO"), the rule
    `kattr-validate` and curation check files against.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_to_fit(image: tf.Tensor, height: int, width: int | None = None) -> tf.Tensor:
    """Scales an image to fit `height` x `width` keeping its aspect, centred on white.

    Args:
        image: uint8 or float [H, W, 3] of any size.
        height: output height in pixels.
        width: output width in pixels; None gives a square of side `height`.

    Returns:
        float32 [height, width, 3] in [0, 255]; the image touches two opposite sides and the
        rest (split evenly, the odd pixel after) is `PAD_VALUE` white.

    Example:
        >>> portrait = tf.zeros([80, 60, 3], tf.uint8)  # 60 px wide, 80 px high
        >>> resize_to_fit(portrait, 128, 100).shape  # 1.6x: 128x96, 2 white columns each side
        TensorShape([128, 100, 3])
    """
    target = as_image_shape((height, height if width is None else width), "height, width")
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.reduce_min(tf.constant(target, tf.float32) / shape)
    new_shape = tf.minimum(tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1), target)
    resized = tf.image.resize(image, new_shape, method="bilinear", antialias=True)
    pad = tf.constant(target, tf.int32) - new_shape
    paddings = [[pad[0] // 2, pad[0] - pad[0] // 2], [pad[1] // 2, pad[1] - pad[1] // 2], [0, 0]]
    fitted = tf.pad(resized - PAD_VALUE, paddings) + PAD_VALUE
    fitted = tf.clip_by_value(fitted, 0.0, 255.0)
    return tf.ensure_shape(fitted, [*target, 3])


def decode_and_resize(encoded: tf.Tensor, size: int | Sequence[int]) -> tf.Tensor:
    """`decode_image` then `resize_to_fit`: bytes in, float32 [height, width, 3] out.

    Args:
        encoded: a scalar tf.string of image bytes.
        size: an int (a square) or `(height, width)`, as `data.image_size`.
    """
    height, width = as_image_shape(size, "size")  # checked before any decoding
    return resize_to_fit(decode_image(encoded), height, width)
