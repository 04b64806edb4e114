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

from kattr._schema import ConfigError, from_data, to_data

__all__ = [
    "AttributeConfig",
    "AugmentationConfig",
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
    "config_from_dict",
    "load_config",
    "save_config",
]

RESERVED_OUTPUT_NAMES = ("embedding",)
SECTIONS = ("data", "taxonomy", "model", "train", "curation")


def canonical(value: Any) -> str:
    """Folds case and whitespace: ``"  Navy   BLUE "`` -> ``"navy blue"``."""
    return " ".join(str(value).split()).lower()


@dataclass
class SplitConfig:
    """How rows are assigned to train/val/test.

    Args:
        column: manifest column holding `train`/`val`/`test`; used when present in the manifest.
        val_fraction: share of rows drawn for validation when the column is absent.
        test_fraction: share of rows drawn for test when the column is absent.
        seed: seed of the random assignment.
    """

    column: str = "split"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0


@dataclass
class DataConfig:
    """Where the catalog lives and how images are read.

    Args:
        manifest: CSV or Parquet file, one row per image.
        image_root: folder that relative image paths are resolved against.
        image_column: manifest column with the image path.
        image_size: side of the square the images are resized to.
        on_unknown: what a value outside the taxonomy does: `error`, `missing` or `drop` (the row).
        splits: train/val/test assignment.
        cache: cache decoded images in memory after the first epoch.
        shuffle_buffer: size of the shuffle buffer of the training pipeline.
    """

    manifest: str = "labels.csv"
    image_root: str = "."
    image_column: str = "image"
    image_size: int = 224
    on_unknown: Literal["error", "missing", "drop"] = "error"
    splits: SplitConfig = field(default_factory=SplitConfig)
    cache: bool = False
    shuffle_buffer: int = 1024


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
class TaxonomyConfig:
    """Categories and attributes of a catalog.

    Args:
        category_column: manifest column with the product category.
        categories: the category values.
        separator: separator of multi-valued cells, e.g. ``"casual|party"``.
        category_merge: synonym -> canonical category.
        attributes: the attributes, one head each.
    """

    category_column: str
    categories: list[str]
    attributes: list[AttributeConfig]
    separator: str = "|"
    category_merge: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Backbone, attention module and heads.

    Args:
        backbone: only `efficientnetb0`.
        weights: `imagenet`, null (random init) or a path to a weights file.
        attention: `transformer` (8-head block over the spatial tokens) or `none` (ablation).
        attention_width: tokens are projected to this width before the block; null keeps
            the backbone's 1280 (the paper's setting).
        num_heads: attention heads.
        feedforward_width: hidden width of the block's feed-forward network.
        attention_dropout: dropout inside the block.
        norm: `pre` or `post` layer normalisation.
        branch_units: hidden layer sizes of each attribute branch (the paper uses two).
        branch_dropout: dropout after each hidden branch layer.
        embedding_dropout: dropout on the pooled feature before the branches.
        batchnorm_momentum: momentum of the backbone's batch-norm statistics; null keeps
            Keras' 0.99. Short from-scratch runs need a faster average (e.g. 0.9), or the
            inference-mode statistics lag far behind the weights.
    """

    backbone: Literal["efficientnetb0"] = "efficientnetb0"
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
    batchnorm_momentum: float | None = None


@dataclass
class OptimizerConfig:
    """Optimizer and learning-rate schedule (exponential decay once per `decay_epochs`).

    Args:
        name: `adam` or `adamw`.
        learning_rate: initial learning rate (paper: 1e-5).
        decay_rate: multiplicative decay (paper: 0.75); 1.0 disables it.
        decay_epochs: epochs between decays.
        weight_decay: AdamW weight decay.
    """

    name: Literal["adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    decay_rate: float = 0.75
    decay_epochs: float = 1.0
    weight_decay: float = 1e-4


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
    """

    normaliser: Literal["batch", "labelled"] = "batch"
    focal_gamma: float = 0.0
    positive_weights: Literal["none", "balanced"] = "none"
    max_positive_weight: float = 10.0
    missing_as_negative: bool = False


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
    """

    enabled: bool = True
    zoom: float = 0.2
    translation: float = 0.2
    rotation_degrees: float = 20.0
    shear_degrees: float = 16.0
    horizontal_flip: bool = True


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


def _check_ranges(config: Config) -> None:
    checks = [
        ("data.image_size", config.data.image_size >= 32, ">= 32"),
        ("train.epochs", config.train.epochs >= 1, ">= 1"),
        ("train.batch_size", config.train.batch_size >= 1, ">= 1"),
        ("train.threshold", 0.0 < config.train.threshold < 1.0, "between 0 and 1"),
        ("model.num_heads", config.model.num_heads >= 1, ">= 1"),
        ("model.branch_units", all(u >= 1 for u in config.model.branch_units), "positive sizes"),
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
    """Plain data for a config (paths as written, not resolved)."""
    data = to_data(config)
    data.pop("base_dir", None)
    return data


def save_config(config: Config, path: str | os.PathLike, absolute_paths: bool = True) -> None:
    """Writes a config as YAML (atomically); data paths become absolute when asked."""
    data = config_to_dict(config)
    if absolute_paths:
        data["data"]["manifest"] = str(config.manifest_path.resolve())
        data["data"]["image_root"] = str(config.image_root.resolve())
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
