"""Backbones of the kattr model, by name: a registry of builders (as timm and keras-hub keep).

`model.backbone` names a registered builder. Two are registered on import:

- `efficientnetb0`: EfficientNetB0 with a configurable output stride, the model of the paper
  and of every real catalog.
- `tiny_cnn`: five plain conv stages of 8 to 32 channels and a 1x1 conv to 64 channels, with
  EfficientNetB0's total stride. For tests and smoke runs, not for real catalogs: it has no
  pretrained weights and learns far less than EfficientNetB0, but it builds, trains, saves and
  exports in a fraction of the time.

EfficientNetB0 shrinks the image 32-fold, so the 60x80 photos of a real catalog give a 2x2
token map unless they are blown up to 128 px and more, which costs 4x the compute for no new
pixels. With `output_stride=16` the last stride-2 stage (block 6) keeps its resolution, as
DeepLab does with its backbones: a 64x50 input gives a 4x4 token map at half the cost of
128x100 with stride 32. Strides do not change any weight shape, so ImageNet weights (or a
local weights file) load unchanged.

A backbone of your own is a function `builder(image, weights, output_stride,
drop_connect_rate) -> keras.Model` (the arguments of `build_backbone` after the name) that
builds its layers on `image`, so they join the kattr model's own graph. Built-in Keras layers
(or classes registered with `keras.saving.register_keras_serializable`) keep the saved model
loadable in safe mode. Register it before the config is loaded; the model's last layer with a
4-D output is the Grad-CAM target (`kattr.model.last_conv_layer_name`).

This module imports Keras only when a backbone is built, so configs are validated against
the registry without TensorFlow.

Example:
    >>> image = keras.Input((64, 50, 3))
    >>> backbone = build_backbone("efficientnetb0", image, weights=None, output_stride=16)
    >>> backbone.output.shape
    (None, 4, 4, 1280)
    >>> register_backbone("my_cnn", my_builder)  # then `model.backbone: my_cnn` in a config
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

__all__ = [
    "OUTPUT_STRIDES",
    "BackboneBuilder",
    "build_backbone",
    "check_backbone_name",
    "register_backbone",
    "registered_backbones",
]

OUTPUT_STRIDES = (16, 32)
# Index of EfficientNet's block 6 (the last stride-2 stage) in its block arguments.
_LAST_DOWNSAMPLING_STAGE = 5

BackboneBuilder = Callable[["keras.KerasTensor", "str | None", int, float], "keras.Model"]
_BUILDERS: dict[str, BackboneBuilder] = {}


def register_backbone(
    name: str, builder: BackboneBuilder | None = None, *, overwrite: bool = False
):
    """Registers `builder` as the backbone `name`; usable as a decorator.

    Args:
        name: the value of `model.backbone` that selects it (a non-empty string).
        builder: `builder(image, weights, output_stride, drop_connect_rate) -> keras.Model`.
            Omitted: returns a decorator that registers the function it decorates.
        overwrite: replace a backbone already registered under `name` (else a ValueError).

    Returns:
        `builder` (or the decorator).

    Example:
        >>> @register_backbone("my_cnn")
        ... def my_cnn(image, weights, output_stride, drop_connect_rate):
        ...     ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"backbone name must be a non-empty string. Received: {name!r}")
    if builder is None:
        return lambda function: register_backbone(name, function, overwrite=overwrite)
    if not callable(builder):
        raise TypeError(f"backbone {name!r}: builder must be callable. Received: {builder!r}")
    if name in _BUILDERS and not overwrite and _BUILDERS[name] is not builder:
        raise ValueError(
            f"backbone {name!r} is already registered; pass overwrite=True to replace it"
        )
    _BUILDERS[name] = builder
    return builder


def registered_backbones() -> tuple[str, ...]:
    """The names `model.backbone` accepts, in registration order."""
    return tuple(_BUILDERS)


def check_backbone_name(name: object) -> None:
    """Raises a ValueError naming `model.backbone` and the registered names if `name` is not one."""
    if not isinstance(name, str) or name not in _BUILDERS:
        raise ValueError(
            f"model.backbone: expected one of {list(_BUILDERS)}, received {name!r}"
        )


def build_backbone(
    name: str,
    image: keras.KerasTensor,
    weights: str | None,
    output_stride: int = 32,
    drop_connect_rate: float = 0.2,
) -> keras.Model:
    """The registered backbone `name` as a functional model on `image`, without a classifier.

    Args:
        name: a registered backbone (`registered_backbones()`).
        image: the input tensor (float32 pixels in [0, 255]; backbones rescale inside).
        weights: `imagenet`, None (random initialisation) or a path to a weights file.
        output_stride: 32, or 16 (the last stride-2 stage without downsampling).
        drop_connect_rate: stochastic-depth rate of residual blocks (EfficientNet: 0.2).

    Returns:
        A `keras.Model` from `image` to the last feature map [batch, h, w, channels].
    """
    check_backbone_name(name)
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"model.output_stride must be one of {OUTPUT_STRIDES}. Received: {output_stride!r}"
        )
    return _BUILDERS[name](image, weights, output_stride, drop_connect_rate)


@register_backbone("efficientnetb0")
def efficientnetb0(
    image: keras.KerasTensor, weights: str | None, output_stride: int, drop_connect_rate: float
) -> keras.Model:
    """EfficientNetB0 (layers named as in `keras.applications.EfficientNetB0`).

    Stride 16 keeps block 6 at full resolution; the weights are those of the published network.
    """
    from keras.src.applications import efficientnet

    blocks = copy.deepcopy(efficientnet.DEFAULT_BLOCKS_ARGS)
    if output_stride == 16:
        blocks[_LAST_DOWNSAMPLING_STAGE]["strides"] = 1
    return efficientnet.EfficientNet(
        1.0, 1.0, 224, 0.2,
        drop_connect_rate=drop_connect_rate,
        blocks_args=blocks,
        include_top=False,
        weights=weights,
        input_tensor=image,
        name="efficientnetb0",
        weights_name="b0",
    )


# (name, filters, strides) of tiny_cnn's conv stages; the product of the strides is 32.
TINY_CNN_STAGES = (
    ("stem", 8, 2),
    ("stage1", 16, 2),
    ("stage2", 24, 2),
    ("stage3", 32, 2),
    ("stage4", 32, 2),
)
TINY_CNN_CHANNELS = 64


@register_backbone("tiny_cnn")
def tiny_cnn(
    image: keras.KerasTensor, weights: str | None, output_stride: int, drop_connect_rate: float
) -> keras.Model:
    """A five-stage 3x3 conv net (8-32 channels) and a 1x1 `top_conv` to 64 channels.

    For tests and smoke runs, not for real catalogs. Each stage is a 3x3 conv with "same"
    padding, batch norm and swish, named `<stage>_conv`, `<stage>_bn`, `<stage>_activation`
    (stages `stem`, `stage1` .. `stage4`); the feature map ends in `top_conv`, `top_bn`,
    `top_activation` as in EfficientNetB0, whose side arithmetic it shares (ceil(side / 32)).
    Stride 16 keeps `stage4` at full resolution. Plain Keras layers only: safe-mode loading
    needs nothing registered. `drop_connect_rate` is unused (no residual blocks).

    Args:
        weights: None, or a path to a weights file saved from this backbone. `imagenet`
            is refused: there are no pretrained weights.
    """
    import keras

    if weights == "imagenet":
        raise ValueError(
            "model.weights: the tiny_cnn backbone has no `imagenet` weights; use null or a "
            "weights file saved from tiny_cnn"
        )
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(image)
    for index, (stage, filters, strides) in enumerate(TINY_CNN_STAGES):
        if output_stride == 16 and index == len(TINY_CNN_STAGES) - 1:
            strides = 1
        x = keras.layers.Conv2D(
            filters, 3, strides=strides, padding="same", use_bias=False, name=f"{stage}_conv"
        )(x)
        x = keras.layers.BatchNormalization(name=f"{stage}_bn")(x)
        x = keras.layers.Activation("swish", name=f"{stage}_activation")(x)
    x = keras.layers.Conv2D(TINY_CNN_CHANNELS, 1, use_bias=False, name="top_conv")(x)
    x = keras.layers.BatchNormalization(name="top_bn")(x)
    x = keras.layers.Activation("swish", name="top_activation")(x)
    backbone = keras.Model(image, x, name="tiny_cnn")
    if weights is not None:
        backbone.load_weights(weights)
    return backbone
