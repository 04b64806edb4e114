"""Training augmentation built from Keras 3 core preprocessing layers.

The default recipe is the Flipkart paper's: zoom +/-20 %, translation +/-20 %, rotation
+/-20 degrees, shear up to 16 degrees and a horizontal flip with p=0.5. Empty regions are filled
with white, the background of catalog photos. Each layer draws its own random numbers (its
own seed derived from the pipeline's), so a flip says nothing about a rotation's sign.

Example:
    >>> augment = build_augmentation(AugmentationConfig(), seed=0)
    >>> augment(tf.zeros([2, 64, 64, 3]), training=True).shape
    TensorShape([2, 64, 64, 3])
"""

from __future__ import annotations

import itertools
import math

import keras

from kattr.config import AugmentationConfig
from kattr.images import PAD_VALUE

__all__ = ["build_augmentation"]


def build_augmentation(
    config: AugmentationConfig, seed: int | None = None
) -> keras.layers.Pipeline | None:
    """A `keras.layers.Pipeline` applying the configured random transforms, or None if off.

    Works on batched float images [B, H, W, 3] with values in [0, 255], inside tf.data.

    Args:
        config: the augmentation recipe.
        seed: None draws fresh randomness; an int makes the transforms reproducible. Layer k
            of the pipeline gets `seed + k`: one shared seed would make every layer draw the
            same numbers (a flipped image would always be rotated the same way).
    """
    if not config.enabled:
        return None
    fill = {"fill_mode": "constant", "fill_value": PAD_VALUE}
    seeds = itertools.count(seed) if seed is not None else itertools.repeat(None)
    layers = []
    if config.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=next(seeds)))
    if config.rotation_degrees > 0:
        layers.append(
            keras.layers.RandomRotation(config.rotation_degrees / 360.0, seed=next(seeds), **fill)
        )
    if config.zoom > 0:
        layers.append(keras.layers.RandomZoom(config.zoom, config.zoom, seed=next(seeds), **fill))
    if config.translation > 0:
        layers.append(
            keras.layers.RandomTranslation(
                config.translation, config.translation, seed=next(seeds), **fill
            )
        )
    if config.shear_degrees > 0:
        # Keras expresses shear as a share of the image side: tan(angle).
        factor = math.tan(math.radians(config.shear_degrees))
        layers.append(keras.layers.RandomShear(factor, factor, seed=next(seeds), **fill))
    if config.erasing > 0:
        # A (min, max) factor: Keras draws each image's probability between the two.
        layers.append(
            keras.layers.RandomErasing(
                (config.erasing, config.erasing), fill_value=PAD_VALUE, seed=next(seeds)
            )
        )
    return keras.layers.Pipeline(layers, name="augmentation") if layers else None
