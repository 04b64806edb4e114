"""The kattr model: a backbone (EfficientNetB0 by default; `model.backbone` names any backbone
registered in `kattr.backbones`), a transformer block over the spatial tokens, one branch per
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
import numpy as np

from kattr.backbones import build_backbone
from kattr.config import Config
from kattr.images import PAD_VALUE
from kattr.layers import ColourHistogram, GroupedBranches, TransformerBlock

__all__ = [
    "EMBEDDING_LAYER",
    "IMAGE_INPUT",
    "build_model",
    "embedding_model",
    "inference_model",
    "inference_model_for",
    "last_conv_layer_name",
    "logits_model",
    "precision_policy",
    "set_output_biases_to_priors",
    "zoom_view",
]

IMAGE_INPUT = "image"
EMBEDDING_LAYER = "embedding"


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
def precision_policy(policy: bool | str) -> Iterator[None]:
    """Models built inside compute under `policy`; the global policy is restored after.

    `policy` is the config's `train.mixed_precision` (true: `mixed_float16`, false: the
    global policy as it is) or a Keras dtype policy name (`mixed_bfloat16`, `float32`, ...).

    Example:
        >>> with precision_policy(config.train.mixed_precision):
        ...     model = build_model(config)
    """
    previous = keras.mixed_precision.global_policy()
    if policy:
        keras.mixed_precision.set_global_policy("mixed_float16" if policy is True else policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_model(config: Config) -> keras.Model:
    """Builds the multi-task model described by `config.model` and `config.taxonomy`.

    Args:
        config: the experiment config; uses `data.image_shape`, `model` and `taxonomy`.

    Returns:
        A functional model with input `image` (float32 [height, width, 3] from
        `data.image_shape`, pixel values in [0, 255]) and a dict of outputs {attribute name:
        float32 sigmoid scores [batch, values]}; each output layer is named after its attribute.
        The pooled feature layer is named `embedding`. With `model.colour_histogram_bins`, the
        branches see the embedding concatenated with the image's standardised HSV histograms
        (layer `branch_features`), all branches or those of `model.colour_histogram_attributes`;
        the embedding itself is unchanged. Outputs stay float32
        under the `mixed_float16` policy.
    """
    settings = config.model
    image = keras.Input((*config.data.image_shape, 3), name=IMAGE_INPUT, dtype="float32")
    backbone = build_backbone(
        settings.backbone, image, _backbone_weights(config), settings.output_stride,
        settings.drop_connect_rate,
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
    features, private = pooled, {}
    if settings.colour_histogram_bins:
        colour = ColourHistogram(settings.colour_histogram_bins, name="colour_histogram")(image)
        colour = keras.layers.BatchNormalization(
            momentum=settings.batchnorm_momentum or 0.99, name="colour_norm"
        )(colour)
        features = keras.layers.Concatenate(name="branch_features")([pooled, colour])
        chosen = settings.colour_histogram_attributes
        private = {
            "private_features": colour.shape[-1],
            "private_branches": None if chosen is None else [
                index for index, attribute in enumerate(attributes) if attribute.name in chosen
            ],
        }
    logits = GroupedBranches(
        units=settings.branch_units,
        output_sizes=[len(a.values) for a in attributes],
        dropout=settings.branch_dropout,
        name="branches",
        **private,
    )(features)
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


def zoom_view(images, factor: float):
    """`images` [batch, height, width, channels] zoomed about their centre, same size.

    Above 1 the centre is magnified (resized up, then cropped); below 1 the whole image
    shrinks inside white padding (`kattr.images.PAD_VALUE`, as the training zoom fills it).

    Example:
        >>> zoom_view(np.zeros((1, 64, 50, 3), "float32"), 0.94).shape  # 60x47 inside white
        (1, 64, 50, 3)
    """
    height, width = images.shape[1], images.shape[2]
    zoomed_height, zoomed_width = round(height * factor), round(width * factor)
    zoomed = keras.ops.image.resize(images, (zoomed_height, zoomed_width))
    if factor >= 1:
        top, left = (zoomed_height - height) // 2, (zoomed_width - width) // 2
        return zoomed[:, top : top + height, left : left + width, :]
    top, left = (height - zoomed_height) // 2, (width - zoomed_width) // 2
    padding = [
        [0, 0],
        [top, height - zoomed_height - top],
        [left, width - zoomed_width - left],
        [0, 0],
    ]
    return keras.ops.pad(zoomed, padding, constant_values=PAD_VALUE)


def inference_model(
    model: keras.Model,
    flip_average: bool = False,
    embedding: bool = False,
    zoom_average: list[float] | None = None,
) -> keras.Model:
    """The model as evaluation, export and scoring run it: scores keyed by attribute name,
    plus the pooled feature under `"embedding"` when `embedding` is set.

    Test-time augmentation for a model trained with flips and zooms (the config's
    `model.flip_average` and `model.zoom_average`): every output is the mean over the image,
    its `zoom_view`s at the `zoom_average` factors, and with `flip_average` the mirror image
    of each; one forward pass per view. `model` itself is unchanged: training, saving and
    Grad-CAM use it as built.

    Example:
        >>> forward = inference_model(model, flip_average=True, embedding=True)
        >>> sorted(forward(images)) == sorted(model.output_names + ["embedding"])
        True
    """
    outputs = dict(model.output)
    if embedding:
        outputs[EMBEDDING_LAYER] = model.get_layer(EMBEDDING_LAYER).output
    forward = keras.Model(model.input, outputs, name=f"{model.name}_forward")
    if not flip_average and not zoom_average:
        return forward
    image = keras.Input(model.input.shape[1:], name=IMAGE_INPUT)
    views = [image] + [zoom_view(image, factor) for factor in zoom_average or []]
    if flip_average:  # [batch, height, width, channels]: mirror the width
        views += [keras.ops.flip(view, axis=2) for view in views]
    scored = [forward(view) for view in views]
    averaged = {name: sum(view[name] for view in scored) / len(scored) for name in outputs}
    return keras.Model(image, averaged, name=f"{model.name}_test_time_average")


def inference_model_for(
    model: keras.Model, config: Config, embedding: bool = False
) -> keras.Model:
    """`inference_model` with the config's test-time views (`model.flip_average`,
    `model.zoom_average`): how evaluation, export and scoring run a trained model.

    Example:
        >>> forward = inference_model_for(model, config, embedding=True)
    """
    return inference_model(
        model,
        flip_average=config.model.flip_average,
        embedding=embedding,
        zoom_average=config.model.zoom_average,
    )


def logits_model(model: keras.Model) -> keras.Model:
    """The training view of `model`: the same layers and weights, outputs before the sigmoid.

    Outputs are keyed by attribute name like the model's: each is the input of the sigmoid
    layer named after the attribute (float16 under `mixed_float16`). Compile and fit this view
    with `from_logits=True` losses and metrics; save and serve `model` itself.

    Example:
        >>> training_view = logits_model(model)
        >>> training_view.compile(loss=build_losses(config, from_logits=True)[0])
    """
    names = model.output_names
    return keras.Model(
        model.input, {name: model.get_layer(name).input for name in names}, name="kattr_logits"
    )


def set_output_biases_to_priors(
    model: keras.Model, config: Config, targets: dict[str, np.ndarray]
) -> None:
    """Starts every output at the log-odds of its value's frequency in `targets`.

    Frequencies are over labelled rows (not-applicable rows count as negatives, missing rows are
    left out) and clipped to [1e-4, 1 - 1e-4]. With 129 product types and zero biases, the first
    hundred steps only learn that most values are rare; starting at the priors skips that.

    Args:
        model: a model from `build_model` (its `branches` layer holds the output biases).
        config: the config it was built from (gives the order of the branches).
        targets: attribute -> targets [rows, values] (1/0, -1 where missing).

    Example:
        >>> set_output_biases_to_priors(model, config, catalog.subset("train").targets)
    """
    branches = model.get_layer("branches")
    biases = keras.ops.convert_to_numpy(branches.biases[-1]).copy()
    for index, attribute in enumerate(config.taxonomy.attributes):
        target = np.asarray(targets[attribute.name])
        known = target >= 0  # per value: partly known rows count on their known values
        if not known.any(axis=0).all():
            continue
        prior = (target == 1).sum(axis=0) / known.sum(axis=0)
        prior = np.clip(prior, 1e-4, 1 - 1e-4)
        biases[index, : len(prior)] = np.log(prior / (1 - prior))
    branches.biases[-1].assign(biases)


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

