"""Class activation heatmaps per attribute and value of a kattr model, with tf-keras-vis.

Grad-CAM (Selvaraju et al., 2017), Grad-CAM++ (Chattopadhay et al., 2018) and Faster Score-CAM
(Wang et al., 2020) come from tf-keras-vis, which works with Keras 3 here. The target of a
heatmap is one value of one attribute: the sub-model from the `image` input to that attribute's
logits (the input of its sigmoid output layer) is explained, so the map runs through the
transformer block and the grouped branches, and the sigmoid cannot saturate the gradients.

Three steps are done here rather than by tf-keras-vis:
- upsampling: tf-keras-vis zooms the map with corners aligned, which moves a coarse map (2x2 at
  64 px) by half a cell towards the image corners; `tf.image.resize` keeps cell centres in place;
- scaling: the map is divided by its maximum instead of min-max scaled, so 0 still means "no
  positive evidence" and a map that is positive everywhere does not lose its weakest cell;
- Score-CAM's softmax: tf-keras-vis applies a softmax to the explained output, so the sub-model
  outputs `[logit, 0]`, whose softmax is `[sigmoid(logit), 1 - sigmoid(logit)]`.

Example:
    >>> explainer = Explainer.from_run("runs/demo")
    >>> images = np.stack([...])  # float32 [batch, height, width, 3] in [0, 255]
    >>> [(e.value, round(e.score, 2)) for e in explainer.explain(images, "colour")]
    [('red', 0.97), ('blue', 0.88)]
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.scores import CategoricalScore

from kattr.config import AttributeConfig, TaxonomyConfig, canonical
from kattr.model import last_conv_layer_name
from kattr.postprocess import decide, thresholds_for

__all__ = ["METHODS", "ExplainError", "Explainer", "Explanation"]

METHODS = ("gradcam", "gradcam++", "scorecam")
_GRADIENT_METHODS = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus}
_SCORECAM_PREDICT_BATCH = 256
_SCORECAM_MASKED_IMAGES = 4096


class ExplainError(ValueError):
    """An unknown attribute, value, method or layer, or images of the wrong shape."""


@dataclass(frozen=True)
class Explanation:
    """The heatmap of one value of one attribute for one image.

    Args:
        image_index: position of the image in the batch given to `Explainer.explain`.
        attribute: the explained attribute (a model output name).
        value: the explained value.
        score: the sigmoid score of `value` for this image.
        predicted: whether `value` is among the image's predicted labels (thresholds and
            exclusivity applied).
        method: `gradcam`, `gradcam++` or `scorecam`.
        layer: the layer whose feature map was weighted.
        heatmap: float32 [height, width] at the image's size, scaled to [0, 1] (all zero when
            nothing in the feature map raises the score).
    """

    image_index: int
    attribute: str
    value: str
    score: float
    predicted: bool
    method: str
    layer: str
    heatmap: np.ndarray


@contextlib.contextmanager
def _quiet_predict() -> Iterator[None]:
    """Score-CAM calls `model.predict` with a list of inputs: no progress bar, no warning."""
    was_enabled = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The structure of `inputs`", UserWarning)
            yield
    finally:
        if was_enabled:
            keras.utils.enable_interactive_logging()


class Explainer:
    """Computes heatmaps per attribute and value for batches of images.

    Args:
        model: a kattr model (dict outputs named after the attributes, input `image`).
        taxonomy: the attributes and their values, in the order of the model's outputs.
        thresholds: attribute -> a threshold or one per value (e.g. from `load_run`);
            0.5 where absent.
        layer: name of the layer whose feature map is weighted. Defaults to the backbone's last
            feature map (`last_conv_layer_name(model)`).
        batch_size: images per forward and backward pass.
        scorecam_channels: Score-CAM masks the image with this many feature channels (those of
            largest spatial variance, "Faster Score-CAM", one image per pass); None uses every
            channel (exact Score-CAM, several images per pass).

    Example:
        >>> config, model, thresholds = load_run("runs/demo")
        >>> explainer = Explainer(model, config.taxonomy, thresholds, layer="block6d_add")
        >>> explainer.explain(images, "sleeve", "long", method="gradcam++")[0].heatmap.shape
        (64, 64)
    """

    def __init__(
        self,
        model: keras.Model,
        taxonomy: TaxonomyConfig,
        thresholds: Mapping[str, float | Sequence[float]] | None = None,
        layer: str | None = None,
        batch_size: int = 16,
        scorecam_channels: int | None = 32,
    ):
        if batch_size < 1 or (scorecam_channels is not None and scorecam_channels < 1):
            raise ExplainError(
                "batch_size must be >= 1 and scorecam_channels >= 1 or None. "
                f"Received: batch_size={batch_size}, scorecam_channels={scorecam_channels}"
            )
        self.model = model
        self.taxonomy = taxonomy
        self.thresholds = thresholds_for(taxonomy, thresholds)
        self.layer = layer or last_conv_layer_name(model)
        self.batch_size = batch_size
        self.scorecam_channels = scorecam_channels
        self._attributes = {attribute.name: attribute for attribute in taxonomy.attributes}
        self._check_model()
        self._logit_models: dict[str, keras.Model] = {}
        self._scorecam_visualisers: dict[tuple[str, int], Scorecam] = {}

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, **kwargs) -> Explainer:
        """An explainer of a finished training run (its best model, taxonomy and thresholds)."""
        from kattr.run_dir import load_run

        config, model, thresholds = load_run(run_dir)
        return cls(model, config.taxonomy, thresholds, **kwargs)

    @property
    def attributes(self) -> list[str]:
        """The attribute names, in taxonomy order."""
        return list(self._attributes)

    @property
    def image_shape(self) -> tuple[int, int]:
        """`(height, width)` of the images the model takes."""
        return int(self.model.input.shape[1]), int(self.model.input.shape[2])

    def attribute(self, name: str) -> AttributeConfig:
        """The taxonomy entry of an attribute; `ExplainError` listing the valid names if unknown."""
        if name not in self._attributes:
            raise ExplainError(
                f"unknown attribute {name!r}; expected one of {self.attributes}. "
                f"Received: attribute={name!r}"
            )
        return self._attributes[name]

    def value_index(self, attribute: str, value: str) -> int:
        """Position of `value` among the attribute's values; `ExplainError` listing them.

        The value is canonicalised as manifest cells are (case, spaces, `merge` synonyms).
        """
        settings = self.attribute(attribute)
        name = canonical(value)
        name = settings.merge.get(name, name)
        values = settings.values
        if name not in values:
            raise ExplainError(
                f"unknown value {value!r} of attribute {attribute!r}; expected one of {values}. "
                f"Received: value={value!r}"
            )
        return values.index(name)

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Sigmoid scores of every attribute: attribute -> float32 [batch, values]."""
        images = self._check_images(images)
        chunks = [
            self.model(images[start:start + self.batch_size], training=False)
            for start in range(0, len(images), self.batch_size)
        ]
        return {
            name: np.concatenate([keras.ops.convert_to_numpy(c[name]) for c in chunks])
            for name in self.attributes
        }

    def decisions(self, scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predicted labels as booleans [batch, values] per attribute (thresholds, exclusivity)."""
        return {
            name: decide(np.asarray(scores[name]), self.thresholds[name], attribute.exclusive)
            for name, attribute in self._attributes.items()
        }

    def explain(
        self,
        images: np.ndarray,
        attribute: str,
        value: str | None = None,
        method: str = "gradcam",
        scores: Mapping[str, np.ndarray] | None = None,
    ) -> list[Explanation]:
        """Heatmaps of one attribute for a batch of images.

        Args:
            images: float32 [batch, height, width, 3] with values in [0, 255], as the model takes.
            attribute: the attribute to explain.
            value: the value to explain for every image. Defaults to each predicted value of
                each image, or its top-scoring value where none is predicted.
            method: one of `METHODS`.
            scores: `predict(images)` when already computed.

        Returns:
            The explanations ordered by image, then by decreasing score.
        """
        images = self._check_images(images)
        if method not in METHODS:
            raise ExplainError(f"unknown method {method!r}; expected one of {list(METHODS)}. "
                               f"Received: method={method!r}")
        values = self.attribute(attribute).values
        fixed_index = None if value is None else self.value_index(attribute, value)
        if scores is None:
            scores = self.predict(images)
        attribute_scores = np.asarray(scores[attribute])
        predicted = decide(
            attribute_scores, self.thresholds[attribute], self.attribute(attribute).exclusive
        )
        targets = [
            (i, j)
            for i in range(len(images))
            for j in _target_indices(attribute_scores[i], predicted[i], fixed_index)
        ]
        rows = np.array([i for i, _ in targets])
        indices = np.array([j for _, j in targets])
        heatmaps = self._heatmaps(images[rows], attribute, indices, method)
        return [
            Explanation(
                image_index=int(i),
                attribute=attribute,
                value=values[j],
                score=float(attribute_scores[i, j]),
                predicted=bool(predicted[i, j]),
                method=method,
                layer=self.layer,
                heatmap=heatmap,
            )
            for (i, j), heatmap in zip(targets, heatmaps, strict=True)
        ]

    def _heatmaps(
        self, images: np.ndarray, attribute: str, indices: np.ndarray, method: str
    ) -> np.ndarray:
        """Heatmaps [n, height, width] in [0, 1] of value `indices[k]` for `images[k]`."""
        cams = np.zeros((len(images), *self._feature_shape()), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            part = slice(start, start + self.batch_size)
            if method == "scorecam":
                cams[part] = self._scorecam(images[part], attribute, indices[part])
            else:
                visualiser = _GRADIENT_METHODS[method](self._logit_model(attribute), clone=False)
                cams[part] = visualiser(
                    CategoricalScore([int(j) for j in indices[part]]), images[part],
                    penultimate_layer=self.layer, seek_penultimate_conv_layer=False,
                    expand_cam=False, normalize_cam=False,
                )
        return _upsample(cams, images.shape[1:3])

    def _scorecam(self, images: np.ndarray, attribute: str, indices: np.ndarray) -> np.ndarray:
        cams = np.zeros((len(images), *self._feature_shape()), dtype=np.float32)
        available = int(self.model.get_layer(self.layer).output.shape[-1])
        exact = self.scorecam_channels is None or self.scorecam_channels >= available
        # tf-keras-vis picks the Faster Score-CAM channels over all images of a call, so a
        # heatmap would depend on the other images: one image per call unless every channel
        # is used. Calls are also kept under _SCORECAM_MASKED_IMAGES masked copies in memory.
        per_call = max(1, _SCORECAM_MASKED_IMAGES // available) if exact else 1
        with _quiet_predict():
            for index in np.unique(indices):
                visualiser = self._scorecam_visualiser(attribute, int(index))
                rows = np.flatnonzero(indices == index)
                for start in range(0, len(rows), per_call):
                    group = rows[start:start + per_call]
                    cams[group] = visualiser(
                        CategoricalScore(0), images[group], penultimate_layer=self.layer,
                        seek_penultimate_conv_layer=False,
                        max_N=None if exact else self.scorecam_channels,
                        batch_size=_SCORECAM_PREDICT_BATCH, expand_cam=False, normalize_cam=False,
                    )
        return cams

    def _scorecam_visualiser(self, attribute: str, index: int) -> Scorecam:
        """Kept per value: `model.predict` is traced once per model, not once per call."""
        if (attribute, index) not in self._scorecam_visualisers:
            # Softmax of [logit, 0] is [sigmoid(logit), 1 - sigmoid(logit)]: module docstring.
            value_logit = self._logit_model(attribute).output[:, index]
            pair = keras.ops.stack([value_logit, keras.ops.zeros_like(value_logit)], axis=-1)
            self._scorecam_visualisers[attribute, index] = Scorecam(
                keras.Model(self.model.input, pair), clone=False
            )
        return self._scorecam_visualisers[attribute, index]

    def _logit_model(self, attribute: str) -> keras.Model:
        if attribute not in self._logit_models:
            layer = self.model.get_layer(attribute)
            # The pre-sigmoid logits; an output that is not an activation is explained as is.
            tensor = layer.input if isinstance(layer, keras.layers.Activation) else layer.output
            self._logit_models[attribute] = keras.Model(
                self.model.input, tensor, name=f"{attribute}_logits"
            )
        return self._logit_models[attribute]

    def _feature_shape(self) -> tuple[int, int]:
        height, width = self.model.get_layer(self.layer).output.shape[1:3]
        return int(height), int(width)

    def _check_model(self) -> None:
        outputs = set(self.model.output) if isinstance(self.model.output, dict) else set()
        missing = [name for name in self.attributes if name not in outputs]
        if missing:
            raise ExplainError(
                f"model {self.model.name!r} has no output(s) {missing} of the taxonomy; "
                f"expected dict outputs named after the attributes. Received: outputs "
                f"{sorted(outputs)}"
            )
        try:
            layer = self.model.get_layer(self.layer)
        except ValueError:
            layer = None
        outputs = keras.tree.flatten(layer.output) if layer is not None else []
        if len(outputs) != 1 or len(outputs[0].shape) != 4:
            raise ExplainError(
                f"layer {self.layer!r}: expected the name of a layer of model {self.model.name!r} "
                f"with a 4-D (image) output, e.g. {last_conv_layer_name(self.model)!r}. "
                f"Received: layer={self.layer!r}"
            )

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        expected = (*self.image_shape, 3)
        if images.ndim != 4 or images.shape[1:] != expected or len(images) == 0:
            raise ExplainError(
                f"images: expected a non-empty float32 batch [batch, {expected[0]}, "
                f"{expected[1]}, 3] with values in [0, 255]. Received: shape {images.shape}"
            )
        return images


def _target_indices(scores: np.ndarray, predicted: np.ndarray, fixed: int | None) -> list[int]:
    """The value positions to explain for one image (see `Explainer.explain`)."""
    if fixed is not None:
        return [fixed]
    chosen = np.flatnonzero(predicted)
    if len(chosen) == 0:
        return [int(np.argmax(scores))]
    return [int(j) for j in chosen[np.argsort(-scores[chosen], kind="stable")]]


def _upsample(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Feature-resolution maps [n, h, w] to [n, *size], cell centres kept, divided by the maximum.

    Dividing by the maximum (rather than tf-keras-vis' min-max scaling) keeps 0 meaning "no
    positive evidence", so the share of mass in a region is that of the method's own map.
    """
    resized = tf.image.resize(cams[..., np.newaxis], size, method="bilinear")[..., 0].numpy()
    resized = np.maximum(resized, 0.0)
    peak = resized.max(axis=(1, 2), keepdims=True)
    return np.divide(resized, peak, out=np.zeros_like(resized), where=peak > 0).astype(np.float32)
