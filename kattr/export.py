"""Export a trained model as a versioned TF Serving SavedModel: bytes in, scores and labels out.

    BASE_PATH/NAME/VERSION/
      saved_model.pb, variables/     signatures `serving_default` and `predict_images`
      assets.extra/kattr.json        taxonomy, thresholds, image size [height, width], config
      assets.extra/tf_serving_warmup_requests

`serving_default` takes `image_bytes` (tf.string [batch], JPEG/PNG/BMP/GIF) and decodes and
resizes them in the graph with `kattr.images.decode_and_resize`, the function training uses;
`predict_images` takes float32 pixels [batch, height, width, 3] in [0, 255] (resized in the
graph unless already the model's size). Both return, per attribute, `<attr>_scores` (float32
[batch, values]) and `<attr>_labels` (the value name where `kattr.postprocess.decide` selects
it, "" elsewhere), and `embedding` (float32 [batch, width], L2-normalised). With the
taxonomy's product-type output (`taxonomy.category_output`, e.g. `product_type_scores`), an
attribute's labels are "" on images whose predicted product type (the highest-scoring one) is
outside its `applies_to`: at serving only the image is known. Scores are never masked.

The graph holds core TensorFlow ops only, without XLA, so the real `tensorflow_model_server`
runs it. A version is written to a hidden folder beside it and renamed into place, so a
watching server never sees it half-written; an existing version is never replaced.

Example:
    >>> export_run("runs/shirts", "exports")  # the next free version
    PosixPath('exports/kattr/1')
    >>> export_run("runs/shirts", "exports", name="shirts", version=7)
    PosixPath('exports/shirts/7')
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import kattr
from kattr._schema import to_data
from kattr.config import Config, config_to_dict
from kattr.images import PAD_VALUE, decode_and_resize, resize_to_fit
from kattr.model import EMBEDDING_LAYER, inference_model_for
from kattr.postprocess import applicability_table, decide, mask_not_applicable, thresholds_for
from kattr.serving_contract import (
    DEFAULT_SIGNATURE,
    EMBEDDING_OUTPUT,
    IMAGE_BYTES_INPUT,
    IMAGE_OK_OUTPUT,
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    METADATA_PATH,
    WARMUP_PATH,
    labels_output,
    scores_output,
)
from kattr.tf_serving_requests import predict_request, write_warmup_requests

__all__ = [
    "EMBEDDING_OUTPUT",
    "IMAGES_SIGNATURE",
    "IMAGE_BYTES_INPUT",
    "IMAGES_INPUT",
    "ExportError",
    "ServingModule",
    "export_model",
    "export_run",
]

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_VERSION_PATTERN = re.compile(r"[0-9]+")
_INT64_MAX = 2**63 - 1
# Warmup images: solid colours, of the model's size and not, JPEG and PNG (both decoders traced).
_WARMUP_COLOURS = ((255, 255, 255), (200, 30, 40), (20, 60, 180))


class ExportError(ValueError):
    """An export that cannot be written: bad name or version, an existing version, a model
    that does not match the config. The message names the path or key."""


class ServingModule(tf.Module):
    """The serving graph around a Keras model: in-graph decoding, scores, labels, embedding.

    `serving_functions` holds both traced as the export's signatures (`serving_default`,
    `predict_images`); `serve_bytes` and `serve_images` also run eagerly.

    Args:
        model: a model from `kattr.model.build_model` (or with its interface): input float32
            [batch, height, width, 3] in [0, 255], dict outputs {attribute: sigmoid scores}, and a
            layer named `embedding`.
        config: the experiment config; uses `data.image_shape`, `train.threshold` and `taxonomy`.
        thresholds: attribute -> a threshold or one per value (attributes left out get
            `config.train.threshold`), as `kattr.postprocess.thresholds_for` takes them.

    Example:
        >>> module = ServingModule(model, config, {"colour": 0.4})
        >>> module.serve_bytes(tf.constant([jpeg_bytes]))["colour_labels"].numpy()
        array([[b'', b'red', b'']], dtype=object)
    """

    def __init__(
        self,
        model: keras.Model,
        config: Config,
        thresholds: Mapping[str, float | Sequence[float]] | None = None,
    ):
        super().__init__(name="kattr_serving")
        _check_model(model, config)
        self.image_shape = config.data.image_shape
        per_value = thresholds_for(config.taxonomy, thresholds, default=config.train.threshold)
        # Plain tuples: baked into the graph as constants when the signatures are traced.
        self._decision_rules = tuple(
            (a.name, tuple(a.values), tuple(per_value[a.name].tolist()), a.exclusive,
             tuple(applicability_table(config.taxonomy, a).tolist()))
            for a in config.taxonomy.attributes
        )
        # Applicability follows the predicted product type: only the image is known here.
        category = config.taxonomy.category_attribute
        self._category_output = None if category is None else category.name
        # One forward pass gives the scores and the pooled feature (averaged over the views of
        # `model.flip_average` and `model.zoom_average`, as evaluation and calibration scored
        # them).
        forward = inference_model_for(model, config, embedding=True)
        # A plain callable, not the tracked Keras model: saving a tracked Keras model walks and
        # retraces every layer (about 10x slower).
        self._forward = functools.partial(forward, training=False)
        # Traced once and called by both signatures, so the model's graph is stored once.
        self._model_outputs = _trace(
            self._outputs, tf.TensorSpec([None, *self.image_shape, 3], tf.float32)
        )
        self.serving_functions = {
            DEFAULT_SIGNATURE: _trace(self.serve_bytes, tf.TensorSpec([None], tf.string)),
            IMAGES_SIGNATURE: _trace(
                self.serve_images, tf.TensorSpec([None, None, None, 3], tf.float32)
            ),
        }
        # The tf.Variables the graphs read, not Keras's wrappers of them: session loaders
        # (TF Serving, saved_model_cli) restore only the variables the object graph holds.
        captured = {}
        for function in self.serving_functions.values():
            captured.update({id(variable): variable for variable in function.variables})
        self.captured_variables = list(captured.values())

    def serve_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """Outputs for encoded images (tf.string [batch]); decoded as in training.

        Bytes that cannot be decoded (not an image, a corrupt or truncated file) do not fail
        the batch: `decode_each` sets them aside, and they get `image_ok` False, scores and
        embedding 0 and no labels, so one client's bad file cannot fail the requests that TF
        Serving's batching groups with it.
        """
        ok, images = decode_each(image_bytes, self.image_shape)
        outputs = dict(self._model_outputs(images))
        keep = ok[:, tf.newaxis]
        for name, value in outputs.items():
            empty = tf.constant("") if value.dtype == tf.string else tf.zeros_like(value)
            outputs[name] = tf.where(keep, value, empty)
        outputs[IMAGE_OK_OUTPUT] = ok
        return outputs

    def serve_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Outputs for float32 pixels [batch, height, width, 3] in [0, 255]; resized as in
        training unless already the model's size."""
        shape = self.image_shape

        def resize_each():
            return tf.map_fn(
                lambda image: resize_to_fit(image, *shape),
                images,
                fn_output_signature=tf.TensorSpec([*shape, 3], tf.float32),
            )

        model_sized = tf.reduce_all(tf.equal(tf.shape(images)[1:3], shape))
        images = tf.cond(model_sized, lambda: images, resize_each)
        return self._model_outputs(tf.ensure_shape(images, [None, *shape, 3]))

    def _outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        predictions = self._forward(images)
        embedding = tf.cast(predictions[EMBEDDING_LAYER], tf.float32)
        outputs = {EMBEDDING_OUTPUT: tf.math.l2_normalize(embedding, axis=-1)}
        category_index = None
        if self._category_output is not None:
            category_index = tf.argmax(predictions[self._category_output], axis=-1)
        for name, values, thresholds, exclusive, applies in self._decision_rules:
            scores = tf.cast(predictions[name], tf.float32)
            decisions = decide(scores, tf.constant(thresholds, tf.float32), exclusive)
            if category_index is not None and not all(applies):
                decisions = mask_not_applicable(decisions, category_index, applies)
            outputs[scores_output(name)] = scores
            outputs[labels_output(name)] = tf.where(decisions, tf.constant(values)[tf.newaxis], "")
        return outputs


def decode_each(image_bytes: tf.Tensor, shape: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Decodes and resizes each encoded image, setting aside those that fail.

    A graph cannot catch a decoder's error, but `tf.data`'s `ignore_errors` can: each image is
    decoded as one dataset element, failed elements are dropped, and their rows are filled
    with white pixels.

    Returns:
        `(ok, images)`: bool [batch], True where the image decoded, and float32
        [batch, height, width, 3] pixels in [0, 255].

    Example:
        >>> ok, images = decode_each(tf.constant([jpeg_bytes, b"not an image"]), (64, 50))
        >>> ok.numpy()
        array([ True, False])
    """
    count = tf.shape(image_bytes, out_type=tf.int64)[0]
    decoded = tf.data.Dataset.from_tensor_slices((tf.range(count), image_bytes)).map(
        lambda index, encoded: (index, decode_and_resize(encoded, shape))
    ).ignore_errors()
    # A last element that always exists: batching an empty dataset yields no element at all.
    sentinel = tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.zeros([*shape, 3])))
    indices, pixels = decoded.concatenate(sentinel).batch(_INT64_MAX).get_single_element()
    rows = indices[:-1, tf.newaxis]
    ok = tf.scatter_nd(rows, tf.ones_like(rows[:, 0], tf.int32), [count]) > 0
    images = tf.tensor_scatter_nd_update(tf.fill([count, *shape, 3], PAD_VALUE), rows, pixels[:-1])
    return ok, images


def _trace(method, spec: tf.TensorSpec) -> tf.types.experimental.ConcreteFunction:
    """A concrete function of `method` for one input, without XLA (TF Serving runs none)."""
    return tf.function(method, input_signature=[spec], jit_compile=False).get_concrete_function()


def _check_model(model: keras.Model, config: Config) -> None:
    """Raises `ExportError` unless the model's outputs match the taxonomy."""
    outputs = model.output if isinstance(model.output, dict) else {}
    expected = {a.name: len(a.values) for a in config.taxonomy.attributes}
    received = {name: tensor.shape[-1] for name, tensor in outputs.items()}
    if received != expected:
        raise ExportError(
            f"model {model.name!r}: expected dict outputs {{attribute: [batch, values]}} sized "
            f"as the taxonomy, {expected}. Received: {received or type(model.output).__name__}"
        )
    layer_names = {layer.name for layer in model.layers}
    if EMBEDDING_LAYER not in layer_names:
        raise ExportError(f"model {model.name!r}: no layer named {EMBEDDING_LAYER!r}")
    height, width = config.data.image_shape
    if tuple(model.input_shape[1:]) != (height, width, 3):
        raise ExportError(
            f"model {model.name!r}: expected input [batch, {height}, {width}, 3] "
            f"(data.image_size as [height, width]). Received: {model.input_shape}"
        )


def _existing_versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(
        int(child.name)
        for child in model_dir.iterdir()
        if _VERSION_PATTERN.fullmatch(child.name) and child.is_dir()
    )


def _check_name(name: str) -> None:
    if not _NAME_PATTERN.fullmatch(name):
        raise ExportError(
            f"name: expected a model name of letters, digits, '_', '.' or '-' (one folder "
            f"name, the model name in every TF Serving URL). Received: {name!r}"
        )


def _version_dir(base_path: str | os.PathLike, name: str, version: int | None) -> Path:
    """`base_path/name/version`, checked: a valid name, a new positive integer version."""
    _check_name(name)
    model_dir = Path(base_path) / name
    next_free = max(_existing_versions(model_dir), default=0) + 1
    if version is None:
        version = next_free
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= _INT64_MAX:
        raise ExportError(f"version: expected a positive integer. Received: {version!r}")
    target = model_dir / str(version)
    if target.exists():
        raise ExportError(
            f"{target}: version {version} exists and versions are never overwritten; pick "
            f"another version, or none for the next free one ({next_free})"
        )
    return target


def _metadata(config: Config, thresholds: Mapping[str, np.ndarray]) -> dict:
    """The content of `assets.extra/kattr.json` (read by `kattr.client.model_files`)."""
    config_data = config_to_dict(config)
    return {
        # Every output, the product type included, so clients name all the scores.
        "taxonomy": to_data(config.taxonomy),
        "thresholds": {name: value.tolist() for name, value in thresholds.items()},
        # Always [height, width]; readers also take the int of older exports (a square).
        "image_size": list(config.data.image_shape),
        # The exporting versions: a server older than the exporting TensorFlow may lack ops.
        "versions": {
            "kattr": kattr.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "config": config_data,
    }


def _warmup_requests(name: str, image_shape: tuple[int, int]) -> list:
    """Real requests for both signatures: single and batched, JPEG and PNG, of the model's
    size and not."""
    height, width = image_shape
    model_sized, wide = (height, width), (height // 2, width)
    pictures = [
        np.full((*shape, 3), colour, dtype=np.uint8)
        for shape, colour in zip((model_sized, wide, model_sized), _WARMUP_COLOURS, strict=True)
    ]
    encoders = (tf.io.encode_jpeg, tf.io.encode_png, tf.io.encode_png)
    encoded = [encode(picture).numpy() for encode, picture in zip(encoders, pictures, strict=True)]
    return [
        predict_request({IMAGE_BYTES_INPUT: encoded[:1]}, model_name=name),
        predict_request({IMAGE_BYTES_INPUT: encoded}, model_name=name),
        predict_request(
            {IMAGES_INPUT: pictures[0][np.newaxis].astype(np.float32)},
            model_name=name,
            signature_name=IMAGES_SIGNATURE,
        ),
    ]


def _publish(staging: Path, target: Path) -> None:
    """Renames the finished staging folder to the version folder, never over an existing one."""
    if target.exists():
        raise ExportError(f"{target}: version {target.name} was written meanwhile; not replaced")
    try:
        # POSIX rename refuses a non-empty target directory, so a racing export cannot be lost.
        os.rename(staging, target)
    except OSError as error:
        raise ExportError(f"{target}: cannot rename the export into place: {error}") from None


def export_model(
    model: keras.Model,
    config: Config,
    thresholds: Mapping[str, float | Sequence[float]] | None,
    base_path: str | os.PathLike,
    name: str = "kattr",
    version: int | None = None,
) -> Path:
    """Writes `model` as the SavedModel `base_path/name/version/`, atomically.

    Args:
        model: the trained Keras model (see `ServingModule`); may be mixed precision, the
            outputs are float32.
        config: the run's config, stored in `kattr.json` with the taxonomy.
        thresholds: decision thresholds (see `ServingModule`); None uses
            `config.train.threshold` everywhere.
        base_path: folder holding one folder per model name.
        name: the model name (the folder TF Serving's `--model_base_path` points at).
        version: a positive integer; None takes one more than the highest existing version.

    Returns:
        The version folder.

    Raises:
        ExportError: invalid name or version, an existing version, or a model that does not
            match `config`.
    """
    target = _version_dir(base_path, name, version)
    model_dir = target.parent
    module = ServingModule(model, config, thresholds)
    model_dir.mkdir(parents=True, exist_ok=True)
    # Beside the target (same file system, so the rename is atomic); not an integer name, so
    # TF Serving ignores it. mkdir rather than mkdtemp: the umask, not 0700, sets its mode.
    staging = model_dir / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    staging.mkdir()
    try:
        tf.saved_model.save(module, str(staging), signatures=module.serving_functions)
        per_value = thresholds_for(config.taxonomy, thresholds, default=config.train.threshold)
        metadata_file = staging / METADATA_PATH
        metadata_file.parent.mkdir(parents=True, exist_ok=True)
        metadata_file.write_text(json.dumps(_metadata(config, per_value), indent=2) + "\n")
        write_warmup_requests(staging / WARMUP_PATH, _warmup_requests(name, module.image_shape))
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def export_run(
    run_dir: str | os.PathLike,
    base_path: str | os.PathLike,
    name: str = "kattr",
    version: int | None = None,
) -> Path:
    """Exports a training run's best model with its thresholds (see `export_model`).

    Example:
        >>> export_run("runs/shirts", "exports", name="shirts")
        PosixPath('exports/shirts/3')
    """
    from kattr.run_dir import load_run

    _version_dir(base_path, name, version)  # fails before the slow model load
    config, model, thresholds = load_run(run_dir)
    return export_model(model, config, thresholds, base_path, name=name, version=version)
