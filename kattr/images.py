"""Image decoding and resizing: the one implementation shared by training and the export.

Images become float32 RGB squares with values in [0, 255] (EfficientNet rescales inside the
model). The aspect ratio is kept: the image is scaled to fit, then padded with white, the usual
background of catalog photos.

Example:
    >>> image = decode_image(tf.io.read_file("shirt.jpg"))
    >>> resize_to_square(image, 64).shape
    TensorShape([64, 64, 3])
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["PAD_VALUE", "decode_and_resize", "decode_image", "resize_to_square"]

PAD_VALUE = 255.0


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG, PNG, BMP or GIF (first frame) bytes into a uint8 RGB tensor [H, W, 3].

    Greyscale is expanded and alpha dropped. Raises `InvalidArgumentError` on bytes that are not
    an image, which the training pipeline catches and counts.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_to_square(image: tf.Tensor, size: int) -> tf.Tensor:
    """Scales an image [H, W, 3] to fit a `size` square, pads with white; float32 in [0, 255]."""
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.reduce_max(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
    resized = tf.image.resize(image, new_shape, method="bilinear", antialias=True)
    pad = size - new_shape
    paddings = [[pad[0] // 2, pad[0] - pad[0] // 2], [pad[1] // 2, pad[1] - pad[1] // 2], [0, 0]]
    square = tf.pad(resized - PAD_VALUE, paddings) + PAD_VALUE
    square = tf.clip_by_value(square, 0.0, 255.0)
    return tf.ensure_shape(square, [size, size, 3])


def decode_and_resize(encoded: tf.Tensor, size: int) -> tf.Tensor:
    """`decode_image` then `resize_to_square`: bytes in, float32 [size, size, 3] out."""
    return resize_to_square(decode_image(encoded), size)
