"""Training throughput (images/s) of the kattr model against a plain EfficientNetB0 classifier.

All models run in ONE process on the same random in-memory batch (no input pipeline), at the
same image size and batch size; warm-up steps (graph tracing) are excluded from the timing and
the models are timed in interleaved rounds, so load from other processes hits all alike.

- (a) plain: EfficientNetB0 (weights None) + one softmax head;
- (b) kattr: the default `ModelConfig` with 49 attributes x 6 values;
- (c) kattr-paper-width: (b) with the paper's full-width block (`attention_width: null`, 1280-d
  feed-forward).

`--image-dir` also times the training tf.data pipeline alone (decode, resize, augment) on the
JPEG files of a folder. `--precision-variants` adds (b) under the `mixed_float16` policy, with
XLA (`jit_compile`), and with both, side by side in the same rounds (for GPU machines; on a CPU
float16 is emulated and slower).

`--image-size` is one side (a square) or `HEIGHTxWIDTH`, e.g. `128x100` for portrait photos.

`--recipe CONFIG` instead times the model of a config file (its image size, attributes and
settings) at each of `--recipe-batch-sizes`, interleaved, with ratios to the first batch size:
what batch size buys in images per second on this machine. `--recipe-precisions` times it at
its own batch size in float32, `mixed_float16`, `mixed_bfloat16` and float32 with XLA, with
ratios to float32 (on the 2-core CPU all three are slower than float32: README.md).

Typical usage:
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/train_throughput.py --steps 5 --rounds 4
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/train_throughput.py \
        --recipe configs/fashion-products.yaml --recipe-batch-sizes 32 64 --steps 4 --rounds 3
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/train_throughput.py \
        --recipe configs/fashion-products.yaml --recipe-precisions --steps 4 --rounds 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kattr._image_shape import as_image_shape
from kattr.config import (
    AttributeConfig,
    AugmentationConfig,
    Config,
    DataConfig,
    ModelConfig,
    TaxonomyConfig,
    TrainConfig,
    load_config,
)
from kattr.losses import build_losses
from kattr.metrics import build_metrics
from kattr.model import build_model, logits_model, precision_policy
from kattr.pipeline import make_dataset


def benchmark_config(
    image_size: int | list[int], attributes: int = 49, values: int = 6, **model_settings
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


def plain_model(image_size: int | list[int], classes: int) -> keras.Model:
    """EfficientNetB0 (random weights) with global average pooling and one softmax head."""
    backbone = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(*as_image_shape(image_size), 3),
        pooling="avg",
    )
    outputs = keras.layers.Dense(classes, activation="softmax")(backbone.output)
    model = keras.Model(backbone.input, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def kattr_model(
    config: Config, with_metrics: bool, mixed_precision: bool = False, jit_compile: bool = False
) -> keras.Model:
    """The kattr training view (logits) compiled with its masked losses (and metrics), as
    `kattr-train` compiles it.

    `mixed_precision` builds it under the `mixed_float16` policy (restored afterwards), as
    `train.mixed_precision` does; `jit_compile` compiles its train step with XLA.
    """
    with precision_policy(mixed_precision):
        model = logits_model(build_model(config))
    losses, loss_weights = build_losses(config, from_logits=True)
    metrics = build_metrics(config, from_logits=True) if with_metrics else None
    model.compile(optimizer="adam", loss=losses, loss_weights=loss_weights, metrics=metrics,
                  jit_compile=jit_compile)
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


def time_steps(model: keras.Model, dataset: tf.data.Dataset, steps: int) -> tuple[float, float]:
    """Wall-clock and process CPU seconds taken by `steps` training steps of `model.fit`."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved_throughput(
    runs: dict[str, tuple[keras.Model, tf.data.Dataset]], steps: int, warmup: int, rounds: int,
) -> dict[str, tuple[float, float]]:
    """Images per wall-clock second (best round) and per CPU second (median) of every model.

    Each round times `steps` steps of every model in turn, so load from other processes on a
    shared machine hits all models alike; the best round is the least disturbed one. CPU time
    of this process is much less sensitive to other processes than wall-clock time. Each
    run's batch size is its dataset's (static) batch dimension, so runs may differ in it.
    """
    for model, dataset in runs.values():
        time_steps(model, dataset, warmup)
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (model, dataset) in runs.items():
            seconds[name].append(time_steps(model, dataset, steps))
    images = {name: steps * dataset.element_spec[0].shape[0]
              for name, (_, dataset) in runs.items()}
    return {
        name: (images[name] / min(wall for wall, _ in times),
               images[name] / float(np.median([cpu for _, cpu in times])))
        for name, times in seconds.items()
    }


RECIPE_PRECISIONS = {
    "float32": ("float32", False),
    "mixed_float16": ("mixed_float16", False),
    "mixed_bfloat16": ("mixed_bfloat16", False),
    "float32 + XLA": ("float32", True),
}


def recipe_precision_throughput(
    config: Config, steps: int, warmup: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """`interleaved_throughput` of `config`'s model at its own batch size under each of
    `RECIPE_PRECISIONS` (a Keras dtype policy, XLA on or off), keyed by its name.

    Example (img/s and img per CPU second, the 2-core development machine, throttled):
        recipe_precision_throughput(load_config("configs/fashion-products.yaml"), 4, 2, 3)
        -> {"float32": (107.7, 59.9), "mixed_float16": (47.6, 24.2),
            "mixed_bfloat16": (66.3, 38.9), "float32 + XLA": (12.5, 6.5)}
    """
    rng = np.random.default_rng(0)
    batch = config.train.batch_size
    images = rng.uniform(0, 255, (batch, *as_image_shape(config.data.image_size), 3))
    data = _repeated(images.astype(np.float32), kattr_targets(config, batch, rng))
    runs = {}
    for name, (policy, xla) in RECIPE_PRECISIONS.items():
        with precision_policy(policy):
            runs[name] = (kattr_model(config, with_metrics=True, jit_compile=xla), data)
    return interleaved_throughput(runs, steps, warmup, rounds)


def recipe_batch_throughput(
    config: Config, batch_sizes: list[int], steps: int, warmup: int, rounds: int
) -> dict[int, tuple[float, float]]:
    """`interleaved_throughput` of `config`'s model (as `kattr-train` compiles it) at each batch
    size, keyed by batch size.

    Example (img/s and img per CPU second measured on the 2-core development machine):
        recipe_batch_throughput(load_config("configs/fashion-products.yaml"), [32, 64], 4, 2, 3)
        -> {32: (152.8, 82.6), 64: (205.1, 112.7)}
    """
    rng = np.random.default_rng(0)
    runs = {}
    for batch in batch_sizes:
        images = rng.uniform(0, 255, (batch, *as_image_shape(config.data.image_size), 3))
        runs[batch] = (kattr_model(config, with_metrics=True),
                       _repeated(images.astype(np.float32), kattr_targets(config, batch, rng)))
    return interleaved_throughput(runs, steps, warmup, rounds)


def measure_input_pipeline(
    paths: list[str], image_size: int | list[int], batch_size: int, batches: int,
    augmentation: AugmentationConfig | None = None,
) -> float:
    """Images/s of the training tf.data pipeline alone (read, decode, resize, augment, batch).

    The first batch (start-up) is not timed; the files are repeated when there are too few.
    """
    targets = {"attribute": np.zeros((len(paths), 1), np.float32)}
    dataset = make_dataset(
        paths, targets, image_size, batch_size, training=True,
        augmentation=augmentation or AugmentationConfig(),
    ).repeat()
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    count = sum(int(next(iterator)[0].shape[0]) for _ in range(batches))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=_image_size, default=96,
                        help="one side (a square) or HEIGHTxWIDTH, e.g. 128x100")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model and round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (tracing)")
    parser.add_argument("--no-metrics", action="store_true", help="compile kattr without metrics")
    parser.add_argument("--attention-width", type=int, action="append", default=None,
                        help="extra kattr runs at these attention widths (repeatable)")
    parser.add_argument("--image-dir", help="also time the tf.data pipeline on the *.jpg here")
    parser.add_argument("--precision-variants", action="store_true",
                        help="also time (b) with mixed_float16, with XLA, and with both")
    parser.add_argument("--pipeline-batches", type=int, default=20)
    parser.add_argument("--recipe", metavar="CONFIG",
                        help="time this config's model at --recipe-batch-sizes instead")
    parser.add_argument("--recipe-batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--recipe-precisions", action="store_true",
                        help="with --recipe: float32, mixed_float16, mixed_bfloat16 and XLA "
                             "at the recipe's batch size instead of the batch sizes")
    args = parser.parse_args()
    if args.recipe:
        _print_recipe_throughput(args)
        return
    rng = np.random.default_rng(0)
    size, batch = args.image_size, args.batch_size
    images = rng.uniform(0, 255, (batch, *as_image_shape(size), 3)).astype(np.float32)

    runs = {}
    labels = rng.integers(0, 6, batch)
    runs["plain"] = (plain_model(size, classes=6), _repeated(images, labels))
    variants = {
        "kattr": {},
        "kattr-paper-width": {"attention_width": None, "feedforward_width": 1280},
    }
    for width in args.attention_width or []:
        variants[f"kattr-width-{width}"] = {"attention_width": width}
    for name, settings in variants.items():
        config = benchmark_config(size, **settings)
        model = kattr_model(config, with_metrics=not args.no_metrics)
        runs[name] = (model, _repeated(images, kattr_targets(config, batch, rng)))
    if args.precision_variants:
        config = benchmark_config(size)
        targets = _repeated(images, kattr_targets(config, batch, rng))
        for name, mixed, xla in (("kattr-mixed", True, False), ("kattr-xla", False, True),
                                 ("kattr-mixed-xla", True, True)):
            model = kattr_model(config, not args.no_metrics, mixed_precision=mixed, jit_compile=xla)
            runs[name] = (model, targets)
    results = interleaved_throughput(runs, args.steps, args.warmup, args.rounds)
    if args.image_dir:
        paths = sorted(str(path) for path in Path(args.image_dir).glob("*.jpg"))
        pipeline = measure_input_pipeline(paths, size, batch, args.pipeline_batches)

    print(f"image size {size}, batch {batch}, {args.rounds} rounds of {args.steps} timed steps")
    plain_wall, plain_cpu = results["plain"]
    for name, (wall, cpu) in results.items():
        print(
            f"{name:>18}: {wall:6.1f} img/s (ratio {wall / plain_wall:.2f}), "
            f"{cpu:6.1f} img/CPU-s (ratio {cpu / plain_cpu:.2f})"
        )
    if args.image_dir:
        print(f"{'tf.data training pipeline':>18}: {pipeline:6.1f} img/s ({len(paths)} files)")


def _print_recipe_throughput(args: argparse.Namespace) -> None:
    config = load_config(args.recipe)
    if args.recipe_precisions:
        results = recipe_precision_throughput(config, args.steps, args.warmup, args.rounds)
        print(f"{args.recipe}: image size {config.data.image_size}, batch "
              f"{config.train.batch_size}, {args.rounds} rounds of {args.steps} timed steps")
        base_wall, base_cpu = results["float32"]
        for name, (wall, cpu) in results.items():
            print(f"{name:>15}: {wall:6.1f} img/s (ratio {wall / base_wall:.2f}), "
                  f"{cpu:6.1f} img/CPU-s (ratio {cpu / base_cpu:.2f})")
        return
    results = recipe_batch_throughput(
        config, args.recipe_batch_sizes, args.steps, args.warmup, args.rounds)
    first_wall, first_cpu = results[args.recipe_batch_sizes[0]]
    print(f"{args.recipe}: image size {config.data.image_size}, "
          f"{args.rounds} rounds of {args.steps} timed steps")
    for batch, (wall, cpu) in results.items():
        print(f"batch {batch:>4}: {wall:6.1f} img/s (ratio {wall / first_wall:.2f}), "
              f"{cpu:6.1f} img/CPU-s (ratio {cpu / first_cpu:.2f})")


def _image_size(text: str) -> int | list[int]:
    """`96` -> 96 (a square); `128x100` -> [128, 100] (height, width), as `data.image_size`."""
    sides = [int(side) for side in text.lower().split("x")]
    if len(sides) > 2:
        raise argparse.ArgumentTypeError(f"expected SIDE or HEIGHTxWIDTH. Received: {text!r}")
    return sides[0] if len(sides) == 1 else sides


def _repeated(images: np.ndarray, targets) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensors((images, targets)).repeat()

if __name__ == "__main__":
    main()
