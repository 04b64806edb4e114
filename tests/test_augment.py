"""Training augmentation: every random layer draws its own numbers."""

import numpy as np
import tensorflow as tf

from kattr.augment import build_augmentation
from kattr.config import AugmentationConfig

SIZE = 64
DRAWS = 300


def augmented_dot_centroids(config, seed):
    """Centroid offsets (x, y) from the centre of a dark dot 16 px right of centre, per draw."""
    image = np.full((SIZE, SIZE, 3), 255.0, np.float32)
    image[30:34, 46:50] = 0.0  # centred on row 31.5 (the middle), column 47.5 (+16)
    augment = build_augmentation(config, seed=seed)
    dataset = (
        tf.data.Dataset.from_tensors(image).repeat(DRAWS).batch(1)
        .map(lambda images: augment(images, training=True))
    )
    darkness = 255.0 - np.concatenate([batch.numpy() for batch in dataset])[..., 0]
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    mass = darkness.sum(axis=(1, 2))
    centre = (SIZE - 1) / 2
    x = (darkness * columns).sum(axis=(1, 2)) / mass - centre
    y = (darkness * rows).sum(axis=(1, 2)) / mass - centre
    return x, y


def test_flip_and_rotation_are_drawn_independently():
    config = AugmentationConfig(zoom=0.0, translation=0.0, shear_degrees=0.0)
    x, y = augmented_dot_centroids(config, seed=0)
    flipped = x < 0  # the dot moved to the left half
    # Rotating the (possibly flipped) dot moves it up or down; undo the flip to read the sign.
    clockwise = np.sign(y) * np.sign(x) > 0
    assert 0.4 < flipped.mean() < 0.6 and 0.4 < clockwise.mean() < 0.6
    # One seed shared by both layers gave a correlation of exactly 1 (every flip rotated alike).
    assert abs(np.corrcoef(flipped, clockwise)[0, 1]) < 0.25


def test_disabled_augmentation_builds_nothing():
    assert build_augmentation(AugmentationConfig(enabled=False), seed=0) is None


def test_erasing_paints_one_white_rectangle_in_about_the_configured_share():
    config = AugmentationConfig(
        zoom=0.0, translation=0.0, rotation_degrees=0.0, shear_degrees=0.0,
        horizontal_flip=False, erasing=0.5,
    )
    augment = build_augmentation(config, seed=0)
    black = tf.zeros([DRAWS, SIZE, SIZE, 3])
    erased = augment(black, training=True).numpy() == 255.0
    touched = erased.any(axis=(1, 2, 3))
    assert 0.4 < touched.mean() < 0.6
    for mask in erased[touched][..., 0]:
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # The white pixels fill their bounding box: one rectangle, nothing scattered.
        assert mask[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1].all()
        assert mask.sum() == len(rows) * len(columns)
        # Each side spans 14-57% of the image's (pixel rounding aside).
        assert all(0.12 * SIZE <= len(side) <= 0.6 * SIZE for side in (rows, columns))
    assert np.array_equal(augment(black, training=False).numpy(), black.numpy())

