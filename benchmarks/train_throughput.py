"""Training throughput (images/s) of the kattr model against a plain EfficientNetB0 classifier.

All models run in ONE process on the same random in-memory batch (no input pipeline), at the
same image size and batch size; warm-up steps (graph tracing) are excluded from the timing.

- (a) plain: EfficientNetB0 (weights None) + one softmax head;
- (b) kattr: the default `ModelConfig` with 49 attributes x 6 values;
- (c) kattr-full-width: (b) with the paper's full-width attention (`attention_width: null`).

Typical usage:
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/train_throughput.py --steps 20
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from kattr.config import (
    AttributeConfig,
    Config,
    DataConfig,
    ModelConfig,
    TaxonomyConfig,
    TrainConfig,
)
from kattr.losses import build_losses
from kattr.metrics import build_metrics
from kattr.model import build_model


def benchmark_config(
    image_size: int, attributes: int = 49, values: int = 6, **model_settings
) -> Config:
    """A config with `attributes` exclusive attributes of `values` values each."""
    return Config(
        data=DataConfig(image_size=image_size),
        taxonomy=TaxonomyConfig(
            category_column="category",
            categories=["all"],
            attributes=[
                AttributeConfig(name=f"attribute_{a}", values=[f"value_{v}" for v in range(values)])
                for a in range(attributes)
            ],
        ),
        model=ModelConfig(**model_settings),
        train=TrainConfig(),
    )


def plain_model(image_size: int, classes: int) -> keras.Model:
    """EfficientNetB0 (random weights) with global average pooling and one softmax head."""
    backbone = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3), pooling="avg"
    )
    outputs = keras.layers.Dense(classes, activation="softmax")(backbone.output)
    model = keras.Model(backbone.input, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def kattr_model(config: Config, with_metrics: bool) -> keras.Model:
    """The kattr model compiled with its masked losses (and streaming metrics)."""
    model = build_model(config)
    losses, loss_weights = build_losses(config)
    metrics = build_metrics(config) if with_metrics else None
    model.compile(optimizer="adam", loss=losses, loss_weights=loss_weights, metrics=metrics)
    return model


def kattr_targets(config: Config, batch_size: int, rng: np.random.Generator) -> dict:
    """One-hot targets with a quarter of the rows missing (-1), as real catalogs have."""
    targets = {}
    for attribute in config.taxonomy.attributes:
        count = len(attribute.values)
        target = np.eye(count, dtype=np.float32)[rng.integers(0, count, batch_size)]
        target[: batch_size // 4] = -1.0
        targets[attribute.name] = target
    return targets


def images_per_second(model: keras.Model, images, targets, batch_size: int, steps: int,
                      warmup: int) -> float:
    """Times `steps` training steps of `model.fit` after `warmup` untimed ones."""
    dataset = tf.data.Dataset.from_tensors((images, targets)).repeat()
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def measure_input_pipeline(paths: list[str], targets: dict, image_size: int, batch_size: int,
                           batches: int) -> float:
    """Images/s of the training tf.data pipeline alone (decode, resize, augment, batch).

    Placeholder: to be filled once `kattr.pipeline.make_dataset` exists.
    """
    raise NotImplementedError("the tf.data benchmark waits for kattr.pipeline.make_dataset")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (tracing)")
    parser.add_argument("--no-metrics", action="store_true", help="compile kattr without metrics")
    parser.add_argument("--attention-width", type=int, action="append", default=None,
                        help="extra kattr runs at these attention widths (repeatable)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    size, batch = args.image_size, args.batch_size
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)

    results = {}
    plain = plain_model(size, classes=6)
    labels = rng.integers(0, 6, batch)
    results["plain"] = images_per_second(plain, images, labels, batch, args.steps, args.warmup)
    variants = {"kattr": {}, "kattr-full-width": {"attention_width": None}}
    for width in args.attention_width or []:
        variants[f"kattr-width-{width}"] = {"attention_width": width}
    for name, settings in variants.items():
        config = benchmark_config(size, **settings)
        model = kattr_model(config, with_metrics=not args.no_metrics)
        targets = kattr_targets(config, batch, rng)
        results[name] = images_per_second(model, images, targets, batch, args.steps, args.warmup)
        keras.backend.clear_session()

    print(f"image size {size}, batch {batch}, {args.steps} timed steps, {args.warmup} warm-up")
    for name, speed in results.items():
        print(f"{name:>20}: {speed:7.1f} img/s  ratio to plain {speed / results['plain']:.2f}")


if __name__ == "__main__":
    main()
