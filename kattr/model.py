"""The kattr model: EfficientNetB0, a transformer block over the spatial tokens, one branch per
attribute ending in a sigmoid output named after the attribute.

The backbone layers are part of the model's own graph (not a nested model), so Grad-CAM can
reach the last convolutional feature map with `last_conv_layer_name(model)`.

Example:
    >>> model = build_model(config)
    >>> scores = model(np.zeros((1, 224, 224, 3), "float32"))
    >>> sorted(scores) == sorted(a.name for a in config.taxonomy.attributes)
    True
    >>> embedding_model(model).output.shape  # the pooled feature, for visual search
    (None, 256)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from kattr.config import Config
from kattr.layers import GroupedBranches, TransformerBlock

__all__ = [
    "EMBEDDING_LAYER",
    "IMAGE_INPUT",
    "build_model",
    "embedding_model",
    "last_conv_layer_name",
    "precision_policy",
]

IMAGE_INPUT = "image"
EMBEDDING_LAYER = "embedding"
_BACKBONES = {"efficientnetb0": keras.applications.EfficientNetB0}


def _backbone_weights(config: Config) -> str | None:
    """`imagenet`, None, or the weights file resolved against the config file's folder."""
    weights = config.model.weights
    if weights in (None, "imagenet"):
        return weights
    path = config.resolve(weights)
    if not path.is_file():
        raise ValueError(
            f"model.weights: expected `imagenet`, null or an existing weights file "
            f"(*.weights.h5). Received: {weights!r} (resolved to {path})"
        )
    return str(path)


@contextlib.contextmanager
def precision_policy(mixed_precision: bool) -> Iterator[None]:
    """Models built inside compute in `mixed_float16` when asked; the global policy is restored.

    Example:
        >>> with precision_policy(config.train.mixed_precision):
        ...     model = build_model(config)
    """
    previous = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_model(config: Config) -> keras.Model:
    """Builds the multi-task model described by `config.model` and `config.taxonomy`.

    Args:
        config: the experiment config; uses `data.image_size`, `model` and `taxonomy`.

    Returns:
        A functional model with input `image` (float32 [S, S, 3], pixel values in [0, 255]) and
        a dict of outputs {attribute name: float32 sigmoid scores [batch, values]}; each output
        layer is named after its attribute. The pooled feature layer is named `embedding`.
        Outputs stay float32 under the `mixed_float16` policy.
    """
    settings = config.model
    size = config.data.image_size
    image = keras.Input((size, size, 3), name=IMAGE_INPUT, dtype="float32")
    backbone = _BACKBONES[settings.backbone](
        include_top=False, weights=_backbone_weights(config), input_tensor=image
    )
    if settings.batchnorm_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = settings.batchnorm_momentum
    taken = {layer.name for layer in backbone.layers}
    clashes = sorted(taken & {a.name for a in config.taxonomy.attributes})
    if clashes:
        raise ValueError(
            f"taxonomy.attributes: names {clashes} clash with layer names of the "
            f"{settings.backbone} backbone; rename these attributes"
        )
    feature_map = backbone.output
    if settings.attention == "none":
        pooled = keras.layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER, dtype="float32")(
            feature_map
        )
    else:
        height, width, channels = feature_map.shape[1:]
        tokens = keras.layers.Reshape((height * width, channels), name="tokens")(feature_map)
        model_width = settings.attention_width or channels
        if model_width != channels:
            tokens = keras.layers.Dense(model_width, name="token_projection")(tokens)
        tokens = TransformerBlock(
            width=model_width,
            num_heads=settings.num_heads,
            feedforward_width=settings.feedforward_width,
            dropout=settings.attention_dropout,
            norm=settings.norm,
            name="transformer",
        )(tokens)
        if settings.norm == "pre":
            # Pre-norm blocks leave the residual stream unnormalised; close it as ViT does.
            tokens = keras.layers.LayerNormalization(epsilon=1e-6, name="transformer_norm")(tokens)
        # Pooled in float32 so the embedding served for visual search is float32 too.
        pooled = keras.layers.GlobalAveragePooling1D(name=EMBEDDING_LAYER, dtype="float32")(tokens)
    if settings.embedding_dropout:
        pooled = keras.layers.Dropout(settings.embedding_dropout, name="embedding_dropout")(pooled)
    attributes = config.taxonomy.attributes
    logits = GroupedBranches(
        units=settings.branch_units,
        output_sizes=[len(a.values) for a in attributes],
        dropout=settings.branch_dropout,
        name="branches",
    )(pooled)
    outputs = {
        attribute.name: keras.layers.Activation("sigmoid", name=attribute.name, dtype="float32")(
            attribute_logits
        )
        for attribute, attribute_logits in zip(attributes, logits, strict=True)
    }
    return keras.Model(image, outputs, name="kattr")


def embedding_model(model: keras.Model) -> keras.Model:
    """A model from the image input to the pooled `embedding` feature (float32 [batch, width])."""
    return keras.Model(model.input, model.get_layer(EMBEDDING_LAYER).output, name="kattr_embedding")


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the layer giving the backbone's last feature map (the Grad-CAM target).

    Example:
        >>> last_conv_layer_name(build_model(config))
        'top_activation'
    """
    for layer in reversed(model.layers):
        outputs = keras.tree.flatten(layer.output)
        if len(outputs) == 1 and len(outputs[0].shape) == 4:
            return layer.name
    raise ValueError(f"model {model.name!r} has no layer with a 4-D (image) output")

