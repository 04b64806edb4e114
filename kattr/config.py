"""Typed experiment configuration: `data`, `taxonomy`, `model` and `train` sections.

A YAML file maps one-to-one onto these dataclasses. Loading rejects unknown keys, wrong types
and inconsistent taxonomies with a `ConfigError` naming the key path. Relative paths in `data`
are resolved against the config file's folder.

Example:
    >>> config = load_config("configs/fashion-products.yaml", ["train.epochs=3"])
    >>> config.train.epochs
    3
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kattr._atomic import write_text_atomic
from kattr._image_shape import as_image_shape
from kattr._schema import ConfigError, from_data, to_data
from kattr.backbones import check_backbone_name

__all__ = [
    "AttributeConfig",
    "AugmentationConfig",
    "CategoryOutputConfig",
    "Config",
    "ConfigError",
    "CurationConfig",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "SamplingConfig",
    "TaxonomyConfig",
    "TrainConfig",
    "apply_overrides",
    "canonical",
    "category_output_attribute",
    "config_from_dict",
    "load_config",
    "save_config",
]

RESERVED_OUTPUT_NAMES = ("embedding",)
SECTIONS = ("data", "taxonomy", "model", "train", "curation")
# EfficientNet reduces a side 32-fold: smaller images leave no spatial token map.
MIN_IMAGE_SIDE = 32


def canonical(value: Any) -> str:
    """Folds case and whitespace: ``"  Navy   BLUE "`` -> ``"navy blue"``."""
    return " ".join(str(value).split()).lower()


@dataclass
class SplitConfig:
    """How rows are assigned to train/val/test.

    Without the split column, a row's split is a function of its key alone (see
    `kattr.catalog.split_of_key`), so adding or dropping rows never moves other rows, and rows
    sharing a key always share a split.

    Args:
        column: manifest column holding `train`/`val`/`test`; used when present in the manifest.
        val_fraction: share of keys assigned to validation when the column is absent.
        test_fraction: share of keys assigned to test when the column is absent.
        seed: seed hashed with each key; another seed gives another assignment.
        key_column: manifest column whose value decides a row's split (e.g. a product `id`);
            None uses the image path as written in `data.image_column`.

    Example:
        >>> SplitConfig(key_column="id", seed=3).val_fraction
        0.15
    """

    column: str = "split"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    key_column: str | None = None


@dataclass
class DataConfig:
    """Where the catalog lives and how images are read.

    Args:
        manifest: CSV or Parquet file, one row per image.
        image_root: folder that relative image paths are resolved against.
        image_column: manifest column with the image path.
        image_size: the size images are resized to (aspect kept, padded with white): an
            int for a square, or `[height, width]`, e.g. `[128, 100]` for portrait
            photos. Every side >= 32. Read it through `image_shape`.
        on_unknown: what a value outside the taxonomy does: `error`, `missing` or `drop` (the row).
        splits: train/val/test assignment.
        cache: cache decoded images in memory after the first epoch.
        shuffle_buffer: size of the shuffle buffer of the training pipeline.

    Example:
        >>> DataConfig(image_size=[128, 100]).image_shape
        (128, 100)
    """

    manifest: str = "labels.csv"
    image_root: str = "."
    image_column: str = "image"
    image_size: int | list[int] = 224
    on_unknown: Literal["error", "missing", "drop"] = "error"
    splits: SplitConfig = field(default_factory=SplitConfig)
    cache: bool = False
    shuffle_buffer: int = 1024

    def __post_init__(self):
        if isinstance(self.image_size, tuple):  # a list, so the saved YAML stays plain
            self.image_size = list(self.image_size)
        _image_shape(self.image_size)  # a bad size fails when the config is made

    @property
    def image_shape(self) -> tuple[int, int]:
        """`(height, width)` of the model's input images, from either form of `image_size`."""
        return _image_shape(self.image_size)


def _image_shape(image_size) -> tuple[int, int]:
    try:
        return as_image_shape(image_size, "data.image_size", minimum=MIN_IMAGE_SIDE)
    except ValueError as error:
        raise ConfigError(str(error)) from None


@dataclass
class AttributeConfig:
    """One visual attribute predicted by its own sigmoid head.

    Args:
        name: attribute name; also the model output name.
        values: the attribute's values (canonicalised: case and whitespace folded).
        column: manifest column; defaults to `name`.
        exclusive: at most one value per product (resolved after the sigmoid).
        applies_to: categories the attribute applies to; absent means all. Elsewhere every
            value is a negative ("not applicable").
        merge: synonym -> canonical value, applied before lookup.
        weight: weight of this attribute's loss (`w_t` in eq. 1).
    """

    name: str
    values: list[str]
    column: str | None = None
    exclusive: bool = True
    applies_to: list[str] | None = None
    merge: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0

    @property
    def source_column(self) -> str:
        return self.column or self.name


@dataclass
class CategoryOutputConfig:
    """The predicted product type: one more exclusive output over the taxonomy's categories.

    On load it becomes an ordinary `AttributeConfig` appended to `taxonomy.attributes` (values
    = `categories`, column = `category_column`, merge = `category_merge`, applies to every
    category), so the model, loss, metrics, export, client and apps treat it like any other
    attribute (the Flipkart paper's 49th branch). A blank category cell is a missing label.

    Args:
        name: the output's name; must differ from every attribute's name. Defaults to
            `product_type`.
        weight: weight of its loss (`w_t` in eq. 1). Defaults to 1.0.

    Example:
        >>> taxonomy = load_config("configs/paper.yaml").taxonomy
        >>> taxonomy.category_attribute.values == taxonomy.categories
        True
    """

    name: str = "product_type"
    weight: float = 1.0


@dataclass
class TaxonomyConfig:
    """Categories and attributes of a catalog.

    Args:
        category_column: manifest column with the product category.
        categories: the category values.
        separator: separator of multi-valued cells, e.g. ``"casual|party"``.
        category_merge: synonym -> canonical category.
        attributes: the attributes, one head each. After loading, the last one is the
            product-type output when `category_output` is set (see `category_attribute`).
        category_output: the predicted product type (`CategoryOutputConfig`); null switches
            it off. Defaults to an output named `product_type`.
    """

    category_column: str
    categories: list[str]
    attributes: list[AttributeConfig]
    separator: str = "|"
    category_merge: dict[str, str] = field(default_factory=dict)
    category_output: CategoryOutputConfig | None = field(default_factory=CategoryOutputConfig)

    @property
    def category_attribute(self) -> AttributeConfig | None:
        """The product-type output among `attributes`; None when off or not materialised."""
        if self.category_output is None:
            return None
        for attribute in self.attributes:
            if attribute.name == self.category_output.name:
                return attribute
        return None

    @property
    def declared_attributes(self) -> list[AttributeConfig]:
        """The attributes as written in the config: `attributes` without the product type."""
        derived = self.category_attribute
        return [a for a in self.attributes if a is not derived]

    def is_category_output(self, attribute: AttributeConfig) -> bool:
        """True for the product-type output (its target is the category cell)."""
        return attribute is self.category_attribute


@dataclass
class ModelConfig:
    """Backbone, attention module and heads.

    Args:
        backbone: a registered backbone (`kattr.backbones.registered_backbones()`):
            `efficientnetb0` (the paper's), or `tiny_cnn` (for tests and smoke runs, not for
            real catalogs); `kattr.backbones.register_backbone` adds others.
        weights: `imagenet`, null (random init) or a path to a weights file.
        attention: `transformer` (8-head block over the spatial tokens) or `none` (ablation).
        attention_width: tokens are projected to this width before the block; null keeps
            the backbone's width (EfficientNetB0: 1280, the paper's setting).
        num_heads: attention heads.
        feedforward_width: hidden width of the block's feed-forward network.
        attention_dropout: dropout inside the block.
        norm: `pre` or `post` layer normalisation.
        branch_units: hidden layer sizes of each attribute branch (the paper uses two).
        branch_dropout: dropout after each hidden branch layer.
        embedding_dropout: dropout on the pooled feature before the branches.
        output_stride: 32 (EfficientNetB0 as published) or 16 (the backbone's last stride-2
            stage keeps its resolution: twice the token map per side for small catalog
            photos; see `kattr.backbones`).
        drop_connect_rate: stochastic depth of the backbone's residual blocks (Keras: 0.2).
        output_bias: `zeros`, or `prior`: each output's bias starts at the log-odds of the
            value's frequency on the training split, so training does not spend its first
            steps learning the priors (most values of a large taxonomy are rare).
        batchnorm_momentum: momentum of the backbone's batch-norm statistics; null keeps
            Keras' 0.99. Short from-scratch runs need a faster average (e.g. 0.9), or the
            inference-mode statistics lag far behind the weights.
        colour_histogram_bins: null (off), or the bins of the HSV histograms of the whole
            image (`kattr.layers.ColourHistogram`: saturation-weighted hue, saturation,
            value) that are standardised and handed to the branches next to the embedding
            (those of `colour_histogram_attributes`).
            A from-scratch backbone learns colour slowly on a small catalog; these statistics
            are what a thumbnail model sees. The embedding served for search is unchanged.
        colour_histogram_attributes: the attributes whose branches see the histograms (e.g.
            `[colour]`); null: every branch. The others keep learning from the embedding alone.
        flip_average: evaluation, calibration, export and scoring average each output over
            the image and its mirror image (`kattr.model.inference_model`): test-time
            augmentation at twice the inference cost. Needs
            `train.augmentation.horizontal_flip`, so the model has learned mirror images.
        zoom_average: null, or zoom factors (e.g. `[0.94, 1.06]`) at which evaluation,
            calibration, export and scoring also score the image and average every output
            over all views (each view mirrored too under `flip_average`): above 1 the centre
            is magnified and cropped, below 1 the image shrinks inside white padding
            (`kattr.model.zoom_view`). One more forward pass per view (per two with
            `flip_average`). Each factor must lie within the zoom the model trained on,
            `1 +/- train.augmentation.zoom`.
    """

    backbone: str = "efficientnetb0"
    weights: str | None = None
    attention: Literal["transformer", "none"] = "transformer"
    attention_width: int | None = 256
    num_heads: int = 8
    feedforward_width: int = 512
    attention_dropout: float = 0.1
    norm: Literal["pre", "post"] = "pre"
    branch_units: list[int] = field(default_factory=lambda: [256, 128])
    branch_dropout: float = 0.1
    embedding_dropout: float = 0.0
    output_stride: Literal[16, 32] = 32
    drop_connect_rate: float = 0.2
    output_bias: Literal["zeros", "prior"] = "zeros"
    batchnorm_momentum: float | None = None
    colour_histogram_bins: int | None = None
    colour_histogram_attributes: list[str] | None = None
    flip_average: bool = False
    zoom_average: list[float] | None = None

    def __post_init__(self):
        try:
            check_backbone_name(self.backbone)  # the registry, not a fixed list
        except ValueError as error:
            raise ConfigError(str(error)) from None


@dataclass
class OptimizerConfig:
    """Optimizer and learning-rate schedule.

    Args:
        name: `adam` or `adamw`.
        learning_rate: initial (exponential) or peak (cosine) learning rate (paper: 1e-5).
        schedule: `exponential` (the paper): `learning_rate * decay_rate ** k` after k whole
            `decay_epochs`. `cosine`: a linear warm-up from 0 to `learning_rate` over
            `warmup_epochs`, then a cosine decay to 0 at the end of the `train.epochs` epochs.
        decay_rate: exponential only: multiplicative decay (paper: 0.75); 1.0 disables it.
        decay_epochs: exponential only: epochs between decays.
        warmup_epochs: cosine only: epochs of linear warm-up (may be fractional), less than
            `train.epochs`; 0 starts the decay at once.
        weight_decay: AdamW weight decay.
        ema_momentum: null trains and keeps the plain weights. A value in (0, 1) also keeps an
            exponential moving average of the weights (Polyak averaging, Keras `use_ema`:
            `average = m * average + (1 - m) * weights` after every step); validation,
            checkpoint choice and the saved model use the average. 0.998 averages about the
            last 500 steps.

    Example:
        >>> OptimizerConfig(schedule="cosine", warmup_epochs=1.0)  # YAML: train.optimizer
    """

    name: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    schedule: Literal["exponential", "cosine"] = "exponential"
    decay_rate: float = 0.75
    decay_epochs: float = 1.0
    warmup_epochs: float = 0.0
    weight_decay: float = 1e-4
    ema_momentum: float | None = None


@dataclass
class LossConfig:
    """Masked multi-task loss (eq. 1) options.

    Args:
        normaliser: `batch` divides each attribute's sum by the batch size (paper);
            `labelled` by the number of labelled (unmasked) samples in the batch.
        focal_gamma: 0 is plain BCE; > 0 uses the binary focal loss.
        positive_weights: `none`, or `balanced` (per-value weight on positives from the
            training frequencies, capped at `max_positive_weight`).
        max_positive_weight: cap on the balanced per-value weights.
        missing_as_negative: ablation that treats missing labels as negatives (not masked).
        label_smoothing: known targets move towards 0.5 by this amount (1 -> 1 - e/2,
            0 -> e/2); 0 keeps hard targets.
    """

    normaliser: Literal["batch", "labelled"] = "batch"
    focal_gamma: float = 0.0
    positive_weights: Literal["none", "balanced"] = "none"
    max_positive_weight: float = 10.0
    missing_as_negative: bool = False
    label_smoothing: float = 0.0


@dataclass
class AugmentationConfig:
    """Training augmentation with Keras core layers (the paper's recipe by default).

    Args:
        enabled: switch all augmentation off with false.
        zoom: +/- zoom factor.
        translation: +/- translation as a share of the side.
        rotation_degrees: +/- rotation.
        shear_degrees: maximum shear.
        horizontal_flip: random left-right flip with p=0.5.
        erasing: probability that one random rectangle of the image (each side 14-57% of
            the image's) is painted the white background (random erasing, Zhong et al. 2017).
    """

    enabled: bool = True
    zoom: float = 0.2
    translation: float = 0.2
    rotation_degrees: float = 20.0
    shear_degrees: float = 16.0
    horizontal_flip: bool = True
    erasing: float = 0.0


@dataclass
class SamplingConfig:
    """Imbalance handling applied to the training split.

    Args:
        category_cap: keep at most this many rows per category (majority down-sampling).
        oversample_below: repeat rows holding a value with fewer than this many examples.
        oversample_max_repeats: most copies of one row made by over-sampling.
    """

    category_cap: int | None = None
    oversample_below: int | None = None
    oversample_max_repeats: int = 5


@dataclass
class TrainConfig:
    """Training loop settings.

    Args:
        epochs: number of epochs.
        batch_size: examples per batch.
        optimizer: optimizer and schedule.
        loss: loss options.
        augmentation: augmentation recipe.
        sampling: imbalance handling.
        threshold: default decision threshold (paper: 0.5).
        mixed_precision: train in mixed_float16.
        jit_compile: XLA-compile the train step.
        early_stopping_patience: epochs without improvement before stopping; null disables.
        seed: global seed.
        deterministic: reproducible training: training batches keep one order and TensorFlow's
            op determinism is switched on (`tf.config.experimental.enable_op_determinism`, for
            the rest of the process), so the same config, data, machine and TensorFlow build
            give the same weights. Off by default: parallel decoding then hands rows over in
            whichever order they finish.
    """

    epochs: int = 10
    batch_size: int = 32
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    threshold: float = 0.5
    mixed_precision: bool = False
    jit_compile: bool = False
    early_stopping_patience: int | None = 5
    seed: int = 0
    deterministic: bool = False


@dataclass
class CurationConfig:
    """Data curation (`kattr-data curate`) settings.

    Args:
        min_side: images whose shorter side is below this many pixels are invalid.
        max_aspect_ratio: images with long/short side above this are invalid.
        near_duplicate_distance: largest Hamming distance between 64-bit perceptual hashes for
            two images to count as near duplicates; 0 keeps exact (content-hash) duplicates only.
        conflict_policy: duplicate groups whose labels disagree: `keep_majority` keeps the
            most common label per attribute, `drop` removes the group, `mark_missing` keeps one
            image with the disagreeing attributes blanked.
        min_count: values with fewer examples than this are rare.
        rare_policy: what rare values become: `keep`, `missing`, or `fallback`.
        rare_fallback: attribute -> value that rare values merge into with `fallback`.
        workers: processes used for hashing; null uses every core.
    """

    min_side: int = 32
    max_aspect_ratio: float = 4.0
    near_duplicate_distance: int = 4
    conflict_policy: Literal["keep_majority", "drop", "mark_missing"] = "keep_majority"
    min_count: int = 0
    rare_policy: Literal["keep", "missing", "fallback"] = "keep"
    rare_fallback: dict[str, str] = field(default_factory=dict)
    workers: int | None = None


@dataclass
class Config:
    """A whole experiment. `base_dir` is the folder relative data paths are resolved against."""

    data: DataConfig
    taxonomy: TaxonomyConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    base_dir: str = field(default=".", compare=False)

    def resolve(self, path: str) -> Path:
        """Resolves a data path relative to the config file's folder."""
        return Path(self.base_dir, os.path.expanduser(path))

    @property
    def manifest_path(self) -> Path:
        return self.resolve(self.data.manifest)

    @property
    def image_root(self) -> Path:
        return self.resolve(self.data.image_root)


def _check_unique(items: list[str], path: str) -> None:
    seen = set()
    for item in items:
        if item in seen:
            raise ConfigError(f"{path}: value {item!r} is listed twice")
        seen.add(item)


def _canonicalise_taxonomy(taxonomy: TaxonomyConfig) -> None:
    """Folds case/whitespace in every value and checks the taxonomy's consistency."""
    taxonomy.categories = [canonical(c) for c in taxonomy.categories]
    _check_unique(taxonomy.categories, "taxonomy.categories")
    if not taxonomy.categories:
        raise ConfigError("taxonomy.categories: expected at least one category")
    taxonomy.category_merge = {
        canonical(k): canonical(v) for k, v in taxonomy.category_merge.items()
    }
    for source, target in taxonomy.category_merge.items():
        if target not in taxonomy.categories:
            raise ConfigError(
                f"taxonomy.category_merge.{source}: merges into unknown category {target!r}"
            )
    _drop_materialised_category_output(taxonomy)
    if not taxonomy.attributes:
        raise ConfigError("taxonomy.attributes: expected at least one attribute")
    names = [a.name for a in taxonomy.attributes]
    _check_unique(names, "taxonomy.attributes[].name")
    for i, attribute in enumerate(taxonomy.attributes):
        path = f"taxonomy.attributes[{i}]"
        if not attribute.name.isidentifier() or attribute.name in RESERVED_OUTPUT_NAMES:
            raise ConfigError(
                f"{path}.name: expected a Python identifier other than {RESERVED_OUTPUT_NAMES}"
                f", received {attribute.name!r}"
            )
        attribute.values = [canonical(v) for v in attribute.values]
        if not attribute.values:
            raise ConfigError(f"{path}.values: expected at least one value")
        _check_unique(attribute.values, f"{path}.values")
        attribute.merge = {canonical(k): canonical(v) for k, v in attribute.merge.items()}
        for source, target in attribute.merge.items():
            if target not in attribute.values:
                raise ConfigError(
                    f"{path}.merge.{source}: merges into {target!r}, which is not in values"
                )
        if attribute.applies_to is not None:
            attribute.applies_to = [canonical(c) for c in attribute.applies_to]
            _check_unique(attribute.applies_to, f"{path}.applies_to")
            for category in attribute.applies_to:
                if category not in taxonomy.categories:
                    raise ConfigError(
                        f"{path}.applies_to: unknown category {category!r}; "
                        f"expected one of {taxonomy.categories}"
                    )
        if attribute.weight < 0:
            raise ConfigError(f"{path}.weight: expected >= 0, received {attribute.weight}")
    if not taxonomy.separator:
        raise ConfigError("taxonomy.separator: expected a non-empty string")
    _add_category_output(taxonomy)


def category_output_attribute(taxonomy: TaxonomyConfig) -> AttributeConfig:
    """The `AttributeConfig` that `taxonomy.category_output` stands for (canonical taxonomy).

    Example:
        >>> category_output_attribute(taxonomy).source_column == taxonomy.category_column
        True
    """
    output = taxonomy.category_output
    if output is None:
        raise ValueError("taxonomy.category_output is null: no product-type output")
    return AttributeConfig(
        name=output.name,
        values=list(taxonomy.categories),
        column=taxonomy.category_column,
        exclusive=True,
        applies_to=None,
        merge=dict(taxonomy.category_merge),
        weight=output.weight,
    )


def _is_materialised(attribute: AttributeConfig, taxonomy: TaxonomyConfig) -> bool:
    """True when `attribute` is exactly the product-type output (a saved, loaded taxonomy)."""
    derived = category_output_attribute(taxonomy)
    return (
        attribute.name == derived.name
        and attribute.source_column == derived.column
        and [canonical(v) for v in attribute.values] == derived.values
        and attribute.exclusive
        and attribute.applies_to is None
        and {canonical(k): canonical(v) for k, v in attribute.merge.items()} == derived.merge
        and attribute.weight == derived.weight
    )


def _drop_materialised_category_output(taxonomy: TaxonomyConfig) -> None:
    """Removes a product-type output already materialised (so loading twice adds it once);
    any other attribute with its name is a clash."""
    output = taxonomy.category_output
    if output is None:
        return
    for i, attribute in enumerate(taxonomy.attributes):
        if attribute.name != output.name:
            continue
        if not _is_materialised(attribute, taxonomy):
            raise ConfigError(
                f"taxonomy.attributes[{i}].name: {attribute.name!r} is the name of the "
                "predicted product type (taxonomy.category_output.name); rename the attribute, "
                "give the product type another name, or set taxonomy.category_output: null"
            )
        del taxonomy.attributes[i]
        return


def _add_category_output(taxonomy: TaxonomyConfig) -> None:
    output = taxonomy.category_output
    if output is None:
        return
    path = "taxonomy.category_output"
    if not output.name.isidentifier() or output.name in RESERVED_OUTPUT_NAMES:
        raise ConfigError(
            f"{path}.name: expected a Python identifier other than {RESERVED_OUTPUT_NAMES}"
            f", received {output.name!r}"
        )
    if output.weight < 0:
        raise ConfigError(f"{path}.weight: expected >= 0, received {output.weight}")
    taxonomy.attributes.append(category_output_attribute(taxonomy))


def _zooms_were_trained(config: Config) -> bool:
    zooms, augmentation = config.model.zoom_average, config.train.augmentation
    if zooms is None:
        return True
    return augmentation.enabled and all(
        factor != 1 and abs(factor - 1) <= augmentation.zoom for factor in zooms
    )


def _check_ranges(config: Config) -> None:
    checks = [
        ("train.epochs", config.train.epochs >= 1, ">= 1"),
        ("train.batch_size", config.train.batch_size >= 1, ">= 1"),
        ("train.threshold", 0.0 < config.train.threshold < 1.0, "between 0 and 1"),
        (
            "train.optimizer.warmup_epochs",
            config.train.optimizer.warmup_epochs == 0
            or (
                config.train.optimizer.schedule == "cosine"
                and 0 < config.train.optimizer.warmup_epochs < config.train.epochs
            ),
            "0, or with schedule cosine between 0 and train.epochs "
            f"(Received: {config.train.optimizer.warmup_epochs})",
        ),
        (
            "train.optimizer.ema_momentum",
            config.train.optimizer.ema_momentum is None
            or 0 < config.train.optimizer.ema_momentum < 1,
            f"null or between 0 and 1 (Received: {config.train.optimizer.ema_momentum})",
        ),
        (
            "train.augmentation.erasing",
            0 <= config.train.augmentation.erasing <= 1,
            f"a probability in [0, 1] (Received: {config.train.augmentation.erasing})",
        ),
        ("model.num_heads", config.model.num_heads >= 1, ">= 1"),
        ("model.drop_connect_rate", 0 <= config.model.drop_connect_rate < 1, "in [0, 1)"),
        ("model.branch_units", all(u >= 1 for u in config.model.branch_units), "positive sizes"),
        (
            "model.colour_histogram_bins",
            config.model.colour_histogram_bins is None or config.model.colour_histogram_bins >= 2,
            f"null or >= 2 (Received: {config.model.colour_histogram_bins})",
        ),
        (
            "model.colour_histogram_attributes",
            set(config.model.colour_histogram_attributes or [])
            <= {a.name for a in config.taxonomy.attributes},
            "names of taxonomy attributes (Received: "
            f"{config.model.colour_histogram_attributes})",
        ),
        (
            "model.flip_average",
            not config.model.flip_average
            or (config.train.augmentation.enabled and config.train.augmentation.horizontal_flip),
            "false unless train.augmentation (enabled, horizontal_flip) trains on mirror images",
        ),
        (
            "model.zoom_average",
            _zooms_were_trained(config),
            "null, or factors other than 1 within 1 +/- train.augmentation.zoom, the zooms "
            f"the model trains on (Received: {config.model.zoom_average}, augmentation "
            f"enabled: {config.train.augmentation.enabled}, zoom: "
            f"{config.train.augmentation.zoom})",
        ),
        (
            "data.splits",
            0 <= config.data.splits.val_fraction + config.data.splits.test_fraction < 1,
            "val_fraction + test_fraction < 1",
        ),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{key}: expected {expected}")


def config_from_dict(data: dict, base_dir: str | os.PathLike = ".") -> Config:
    """Validates plain data (as read from YAML) into a `Config`."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, received {type(data).__name__}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; expected one of {list(SECTIONS)}")
    for section in ("data", "taxonomy"):
        if section not in data:
            raise ConfigError(f"{section}: required section is missing")
    config = Config(
        data=from_data(DataConfig, data["data"], "data"),
        taxonomy=from_data(TaxonomyConfig, data["taxonomy"], "taxonomy"),
        model=from_data(ModelConfig, data.get("model"), "model"),
        train=from_data(TrainConfig, data.get("train"), "train"),
        curation=from_data(CurationConfig, data.get("curation"), "curation"),
        base_dir=str(base_dir),
    )
    _canonicalise_taxonomy(config.taxonomy)
    _check_ranges(config)
    return config


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Applies ``key.path=value`` overrides (values parsed as YAML) to raw config data.

    Example:
        >>> apply_overrides({"train": {}}, ["train.epochs=3"])
        {'train': {'epochs': 3}}
    """
    for override in overrides or []:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected KEY.PATH=VALUE")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Loads and validates a YAML config, applying ``--set``-style overrides."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from error
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from error
    try:
        return config_from_dict(apply_overrides(data, overrides), base_dir=path.parent)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def config_to_dict(config: Config) -> dict:
    """Plain data for a config (paths as written, not resolved).

    The product-type output is left out of `taxonomy.attributes` (it is derived again from
    `taxonomy.category_output` on load), so a saved config reads as the one written.
    """
    data = to_data(config)
    data.pop("base_dir", None)
    derived = config.taxonomy.category_attribute
    if derived is not None:
        data["taxonomy"]["attributes"] = [
            to_data(a) for a in config.taxonomy.attributes if a is not derived
        ]
    return data


def save_config(config: Config, path: str | os.PathLike, absolute_paths: bool = True) -> None:
    """Writes a config as YAML (atomically); data paths become absolute when asked."""
    data = config_to_dict(config)
    if absolute_paths:
        data["data"]["manifest"] = str(config.manifest_path.resolve())
        data["data"]["image_root"] = str(config.image_root.resolve())
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))
