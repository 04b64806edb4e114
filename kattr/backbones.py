"""Backbones of the kattr model: EfficientNetB0 with a configurable output stride.

EfficientNetB0 shrinks the image 32-fold, so the 60x80 photos of a real catalog give a 2x2
token map unless they are blown up to 128 px and more, which costs 4x the compute for no new
pixels. With `output_stride=16` the last stride-2 stage (block 6) keeps its resolution, as
DeepLab does with its backbones: a 64x50 input gives a 4x4 token map at half the cost of
128x100 with stride 32. Strides do not change any weight shape, so ImageNet weights (or a
local weights file) load unchanged.

Example:
    >>> image = keras.Input((64, 50, 3))
    >>> backbone = build_backbone("efficientnetb0", image, weights=None, output_stride=16)
    >>> backbone.output.shape
    (None, 4, 4, 1280)
"""

from __future__ import annotations

import copy

import keras
from keras.src.applications import efficientnet

__all__ = ["BACKBONES", "OUTPUT_STRIDES", "build_backbone"]

BACKBONES = ("efficientnetb0",)
OUTPUT_STRIDES = (16, 32)
# Index of EfficientNet's block 6 (the last stride-2 stage) in its block arguments.
_LAST_DOWNSAMPLING_STAGE = 5


def build_backbone(
    name: str,
    image: keras.KerasTensor,
    weights: str | None,
    output_stride: int = 32,
    drop_connect_rate: float = 0.2,
) -> keras.Model:
    """The backbone as a functional model on `image`, without its classification top.

    Args:
        name: `efficientnetb0`.
        image: the input tensor (float32 pixels in [0, 255]; EfficientNet rescales inside).
        weights: `imagenet`, None (random initialisation) or a path to a weights file.
        output_stride: 32 (the published network) or 16 (block 6 without downsampling).
        drop_connect_rate: stochastic-depth rate of the residual blocks (Keras default 0.2).

    Returns:
        A `keras.Model` whose layers are named as in `keras.applications.EfficientNetB0`.
    """
    if name not in BACKBONES:
        raise ValueError(f"model.backbone must be one of {BACKBONES}. Received: {name!r}")
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"model.output_stride must be one of {OUTPUT_STRIDES}. Received: {output_stride!r}"
        )
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
