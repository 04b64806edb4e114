"""tf.data input pipelines: read, decode, resize, (augment), shuffle, batch, prefetch.

Corrupt or unreadable files never stop an epoch: they are skipped, and a `SkipCounter`
tells how many were skipped (`kattr-data validate` names them up front).

Example:
    >>> counter = SkipCounter(expected=len(paths))
    >>> dataset = make_dataset(paths, targets, image_size=64, batch_size=32, training=True,
    ...                        counter=counter)
    >>> images, targets = next(iter(dataset))  # float32 [32, 64, 64, 3], {attr: [32, C]}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kattr.augment import build_augmentation
from kattr.config import AugmentationConfig
from kattr.images import decode_and_resize

__all__ = ["SkipCounter", "load_image", "make_dataset"]


class SkipCounter:
    """Counts the images a pipeline yields, to report how many it skipped per pass.

    Args:
        expected: images one full pass should yield.

    Example:
        >>> counter = SkipCounter(expected=100)
        >>> # ... iterate a dataset made with counter=counter once ...
        >>> counter.skipped  # files that could not be read or decoded
        2
    """

    def __init__(self, expected: int):
        self.expected = int(expected)
        self.seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_seen")

    def count(self, image, targets):
        """A tf.data map function that counts one element and passes it through."""
        with tf.control_dependencies([self.seen.assign_add(1)]):
            return tf.identity(image), targets

    @property
    def skipped(self) -> int:
        """Images of the last full pass that were skipped."""
        return max(self.expected - int(self.seen.numpy()), 0)

    def reset(self) -> None:
        self.seen.assign(0)


def load_image(path: tf.Tensor, image_size: int | Sequence[int]) -> tf.Tensor:
    """Reads and decodes one file into float32 [height, width, 3] in [0, 255]."""
    return decode_and_resize(tf.io.read_file(path), image_size)


def make_dataset(
    paths: list[str],
    targets: dict[str, np.ndarray],
    image_size: int | Sequence[int],
    batch_size: int,
    training: bool,
    augmentation: AugmentationConfig | None = None,
    shuffle_buffer: int = 1024,
    cache: bool = False,
    seed: int = 0,
    counter: SkipCounter | None = None,
    deterministic: bool = False,
) -> tf.data.Dataset:
    """Builds the pipeline yielding `(images, {attribute: target})` batches.

    Args:
        paths: image files, one per row of `targets`.
        targets: attribute -> float32 [N, C] (1/0, -1 where missing; mask = target >= 0).
        image_size: an int (a square) or `(height, width)`, e.g. `config.data.image_shape`.
        batch_size: examples per batch (the last batch may be smaller).
        training: shuffle and augment.
        augmentation: the augmentation recipe (training only); None or disabled means none.
        shuffle_buffer: shuffle buffer size.
        cache: keep decoded images in memory after the first pass.
        seed: shuffle and augmentation seed.
        counter: counts yielded images so skipped files can be reported.
        deterministic: training rows keep the seed's order (otherwise parallel decoding hands
            them over as they finish, which is faster); evaluation rows always keep theirs.
    """
    lengths = {name: len(t) for name, t in targets.items()}
    if any(n != len(paths) for n in lengths.values()):
        raise ValueError(f"targets must have one row per path ({len(paths)}). Received: {lengths}")
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), {k: np.asarray(v, np.float32) for k, v in targets.items()})
    )
    if training and not cache:
        dataset = dataset.shuffle(min(shuffle_buffer, max(len(paths), 1)), seed=seed)
    dataset = dataset.map(
        lambda path, y: (load_image(path, image_size), y),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic or not training,
    ).ignore_errors()
    if cache:
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(min(shuffle_buffer, max(len(paths), 1)), seed=seed)
    if counter is not None:
        dataset = dataset.map(counter.count)
    dataset = dataset.batch(batch_size)
    augment = build_augmentation(augmentation, seed=seed) if training and augmentation else None
    if augment is not None:
        dataset = dataset.map(
            # Interpolation can overshoot by float rounding; keep pixels in [0, 255].
            lambda images, y: (tf.clip_by_value(augment(images, training=True), 0.0, 255.0), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
