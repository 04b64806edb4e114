"""Scoring a manifest with any model source: a run directory, an exported model or a server.

Every catalog application (enrichment, audit, annotation queue, visual search) starts here: a
`Scorer` turns encoded images into per-attribute sigmoid scores and L2-normalised embeddings,
and `Scorer.score_files` aligns them with the rows of a manifest. An image that cannot be read
or decoded gets a NaN row and is listed in `CatalogScores.failures` (row, path, reason): it is
never silently dropped, so row `i` of every array is row `i` of the manifest.

Sources:
- `Scorer.from_run(RUN_DIR)`: the run's Keras model in this process (thresholds from
  `thresholds.json`, images decoded by `kattr.images.decode_and_resize` as in training);
- `Scorer.from_model_dir(EXPORT)`: an exported SavedModel in this process (taxonomy and
  thresholds from its `assets.extra/kattr.json`);
- `Scorer.from_client(PredictClient.from_rest(...) or from_grpc(...), metadata)`: TF Serving or
  kattr-serve, in batches, with the taxonomy and thresholds of the export it serves.

`kattr.apps.sources.open_scorer` picks one of them from command-line style arguments.

Example:
    >>> with Scorer.from_run("runs/shirts") as scorer:
    ...     frame, paths = manifest_images("catalog.csv", image_root="catalog")
    ...     result = scorer.score_files(paths)
    >>> result.scores["colour"].shape, result.embeddings.shape, len(result.failures)
    ((600, 6), (600, 64), 0)
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kattr.client.decode import NOT_AN_IMAGE
from kattr.client.model_files import read_metadata
from kattr.config import TaxonomyConfig
from kattr.labels import LabelError, is_blank, read_manifest
from kattr.serving_contract import (
    EMBEDDING_OUTPUT,
    IMAGE_OK_OUTPUT,
    METADATA_PATH,
    attribute_of_scores_output,
    scores_output,
)

__all__ = [
    "APPEARANCE_SIDE",
    "VIEWS",
    "CatalogScores",
    "ImageDecodeError",
    "ImageFailure",
    "Scorer",
    "appearance_descriptor",
    "manifest_images",
    "taxonomy_from_metadata",
    "view_bytes",
]

VIEWS = ("flip", "crop")
APPEARANCE_SIDE = 16
_CROP_FRACTION = 0.9
_appearance_decoder = None


@dataclass(frozen=True)
class ImageFailure:
    """An image that could not be scored.

    Args:
        row: 0-based position in the manifest.
        path: the image file.
        reason: why it failed (not found, cannot decode, refused by the server).
    """

    row: int
    path: str
    reason: str


@dataclass
class CatalogScores:
    """Model outputs aligned with the rows of a manifest.

    Args:
        scores: attribute -> float32 [rows, values] sigmoid scores; NaN rows where the image
            failed.
        embeddings: float32 [rows, width], L2-normalised; NaN rows where the image failed.
        taxonomy: the model's attributes (value order = score columns).
        thresholds: attribute -> float32 [values] decision thresholds of the source.
        paths: the image file of each row.
        failures: the rows whose image could not be scored.
        source: what scored them, e.g. ``{"kind": "run", "path": "/runs/shirts"}``.
        appearance: float32 [rows, 3 * APPEARANCE_SIDE**2] `appearance_descriptor`s when asked
            for (visual search), else None; NaN rows where the image failed.
    """

    scores: dict[str, np.ndarray]
    embeddings: np.ndarray
    taxonomy: TaxonomyConfig
    thresholds: dict[str, np.ndarray]
    paths: list[str]
    failures: list[ImageFailure] = field(default_factory=list)
    source: dict = field(default_factory=dict)
    appearance: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def scored(self) -> np.ndarray:
        """bool [rows]: True where the image was scored."""
        mask = np.ones(len(self.paths), dtype=bool)
        mask[[failure.row for failure in self.failures]] = False
        return mask

    def failure_lines(self, limit: int = 10) -> list[str]:
        """Human-readable lines naming the failed rows (1-based data rows) and files."""
        lines = [f"row {f.row + 1}: {f.path}: {f.reason}" for f in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"... and {len(self.failures) - limit} more")
        return lines


def manifest_images(
    manifest: str | os.PathLike | pd.DataFrame,
    image_root: str | os.PathLike | None = None,
    image_column: str = "image",
) -> tuple[pd.DataFrame, list[str]]:
    """A manifest and the image file of each of its rows.

    Args:
        manifest: a CSV/Parquet file, or a frame already read with `read_manifest`.
        image_root: folder relative image paths are resolved against; defaults to the
            manifest file's folder (the working directory for a frame).
        image_column: the column holding image paths.

    Raises:
        LabelError: no such column, or a blank image cell (the message names the row).
    """
    if isinstance(manifest, pd.DataFrame):
        frame, name, default_root = manifest.reset_index(drop=True), "manifest", Path(".")
    else:
        frame = read_manifest(manifest).reset_index(drop=True)
        name, default_root = str(manifest), Path(manifest).parent
    if image_column not in frame.columns:
        raise LabelError(
            f"{name}: no image column {image_column!r} (set --image-column or data.image_column "
            f"in --config). Received columns: {list(frame.columns)}"
        )
    root = Path(image_root) if image_root is not None else default_root
    paths = []
    for row, cell in enumerate(frame[image_column]):
        if is_blank(cell):
            raise LabelError(f"{name}: row {row + 1}, column {image_column!r}: blank image path")
        path = Path(str(cell).strip())
        paths.append(str(path if path.is_absolute() else root / path))
    return frame, paths


def taxonomy_from_metadata(
    metadata: Mapping, source: str = METADATA_PATH.name
) -> tuple[TaxonomyConfig, dict[str, np.ndarray]]:
    """The taxonomy and per-value thresholds stored in a `kattr.json`."""
    from kattr._schema import ConfigError, from_data
    from kattr.postprocess import thresholds_for

    try:
        taxonomy_data = dict(metadata["taxonomy"])
        # Exports made before the product-type output existed predict no product type.
        taxonomy_data.setdefault("category_output", None)
        taxonomy = from_data(TaxonomyConfig, taxonomy_data, "taxonomy")
        thresholds = thresholds_for(taxonomy, metadata.get("thresholds"))
    except (KeyError, ConfigError, ValueError) as error:
        raise ValueError(f"{source}: expected a taxonomy and thresholds: {error}") from None
    return taxonomy, thresholds


def view_bytes(data: bytes, view: str) -> bytes:
    """An augmented copy of an encoded image, re-encoded as PNG (works with every source).

    Args:
        data: the encoded image.
        view: `flip` (left-right mirror) or `crop` (the central 90% of each side).
    """
    from PIL import Image

    if view not in VIEWS:
        raise ValueError(f"view must be one of {list(VIEWS)}. Received: view={view!r}")
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        if view == "flip":
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            width, height = image.size
            left = round(width * (1 - _CROP_FRACTION) / 2)
            top = round(height * (1 - _CROP_FRACTION) / 2)
            image = image.crop((left, top, width - left, height - top))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def appearance_descriptor(data: bytes) -> np.ndarray:
    """A model-free appearance descriptor of an encoded image: float32 [3 * 16 * 16].

    The image is decoded and resized as in training (`kattr.images.decode_and_resize`) to a
    16 px square, centred on its mean and L2-normalised. Visual search mixes it with the model
    embedding: the embedding of an attribute model groups products by their attributes and
    barely tells two red striped shirts apart, while this descriptor recognises the same photo
    after re-encoding or a slight crop.

    Raises:
        tf.errors.InvalidArgumentError: bytes that are not an image.
    """
    import tensorflow as tf

    from kattr.images import decode_and_resize

    global _appearance_decoder
    if _appearance_decoder is None:
        _appearance_decoder = tf.function(
            lambda encoded: decode_and_resize(encoded, APPEARANCE_SIDE),
            input_signature=[tf.TensorSpec([], tf.string)],
        )
    pixels = _appearance_decoder(tf.constant(data)).numpy().reshape(-1)
    pixels = pixels - pixels.mean()
    return (pixels / max(float(np.linalg.norm(pixels)), 1e-6)).astype(np.float32)


class ImageDecodeError(ValueError):
    """An image that the source cannot decode (not an image, truncated, refused)."""


class Scorer:
    """A model source that scores encoded images: attribute scores and embeddings.

    Build one with `from_run`, `from_model_dir` or `from_client`.

    Args:
        predict: encoded images -> (attribute -> scores [n, values], embeddings [n, width]);
            raises `ImageDecodeError` when an image cannot be decoded.
        taxonomy: the model's attributes.
        thresholds: attribute -> float32 [values].
        source: a description of the source (kind and where), stored in indexes and reports.
        close: releases the source.
        model: the Keras model when the source is a run (for Grad-CAM), else None.
        image_shape: the model's input `(height, width)`, when known.

    Example:
        >>> with Scorer.from_model_dir("exports/shirts") as scorer:
        ...     scores, embeddings = scorer.predict([Path("a.jpg").read_bytes()])
    """

    def __init__(
        self,
        predict: Callable[[Sequence[bytes]], tuple[dict[str, np.ndarray], np.ndarray]],
        taxonomy: TaxonomyConfig,
        thresholds: Mapping[str, np.ndarray],
        source: dict,
        close: Callable[[], None] | None = None,
        model=None,
        image_shape: tuple[int, int] | None = None,
    ):
        self._predict = predict
        self.taxonomy = taxonomy
        self.thresholds = {name: np.asarray(t, np.float32) for name, t in thresholds.items()}
        self.source = dict(source)
        self._close = close
        self.model = model
        self.image_shape = image_shape

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike) -> Scorer:
        """The best model of a training run, in this process."""
        import keras
        import tensorflow as tf

        from kattr.images import decode_and_resize
        from kattr.model import inference_model_for
        from kattr.run_dir import load_run

        config, model, thresholds = load_run(run_dir)
        shape = config.data.image_shape
        # One forward pass gives the scores and the pooled feature, as the export serves them.
        outputs_model = inference_model_for(model, config, embedding=True)
        # Traced once for any batch size: eager calls cost about 0.3 s each on 2 CPU cores.
        forward = tf.function(
            lambda images: outputs_model(images, training=False),
            input_signature=[tf.TensorSpec([None, *shape, 3], tf.float32)],
        )
        decode = tf.function(
            lambda encoded: decode_and_resize(encoded, shape),
            input_signature=[tf.TensorSpec([], tf.string)],
        )
        names = [attribute.name for attribute in config.taxonomy.attributes]

        def predict(images: Sequence[bytes]):
            pixels = []
            for data in images:
                try:
                    pixels.append(decode(tf.constant(data)).numpy())
                except tf.errors.OpError as error:
                    raise ImageDecodeError(_tf_reason(error)) from None
            outputs = forward(tf.constant(np.stack(pixels)))
            scores = {name: keras.ops.convert_to_numpy(outputs[name]) for name in names}
            return scores, keras.ops.convert_to_numpy(outputs["embedding"])

        return cls(
            predict, config.taxonomy, thresholds,
            source={"kind": "run", "path": str(Path(run_dir).resolve())},
            model=model, image_shape=shape,
        )

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike, **client_arguments) -> Scorer:
        """An exported SavedModel (a version directory or a base path) in this process."""
        from kattr.client import PredictClient

        client = PredictClient.from_model_dir(model_dir, **client_arguments)
        export_dir = client.transport.export_dir
        source = {"kind": "model_dir", "path": str(Path(export_dir).resolve())}
        return cls.from_client(client, read_metadata(export_dir), source)

    @classmethod
    def from_client(cls, client, metadata: Mapping, source: dict) -> Scorer:
        """A `PredictClient` (REST, gRPC or in-process) and the `kattr.json` of what it serves.

        A server client is pinned to the version served when the scorer opens (see
        `PredictClient.served_model`): every row of every `score_files` call is answered by that
        version, recorded as ``source["version"]``. When the server stops serving it mid-run,
        scoring fails with `kattr.client.ModelVersionError` rather than mix two versions.

        Args:
            client: a `kattr.client.PredictClient`.
            metadata: the export's `kattr.json` content (taxonomy, thresholds), e.g. from
                `kattr.client.model_files.read_metadata`; TF Serving's own metadata has no taxonomy.
            source: a description, e.g. ``{"kind": "grpc", "target": ..., "model_name": ...}``.

        Raises:
            ValueError: the taxonomy's attributes and value counts do not match the served
                model's `<attr>_scores` outputs (checked on the server's metadata when it opens,
                and on every answer); the message names each attribute and both counts.
        """
        import grpc

        from kattr.client.model_files import image_shape_from_metadata
        from kattr.client.served_model import check_value_names
        from kattr.server.errors import ServingError

        taxonomy, thresholds = taxonomy_from_metadata(metadata)
        names = [attribute.name for attribute in taxonomy.attributes]
        value_names = {attribute.name: attribute.values for attribute in taxonomy.attributes}
        names_source = str(source.get("values_from") or METADATA_PATH.name)
        source = dict(source)
        try:
            served = client.served_model() if hasattr(client, "served_model") else None
            if served is not None:
                check_value_names(
                    value_names, served.score_widths(client.transport.signature_name),
                    names_source, served=f"model {served.name!r} version {served.version}",
                )
                source["version"] = served.version
        except BaseException:
            client.close()
            raise
        answered_by = (f"the answer of model {served.name!r} version {served.version}"
                       if served is not None else "the model's answer")

        def predict(images: Sequence[bytes]):
            try:
                outputs = client.predict_raw(list(images))
            except ServingError as error:
                if error.code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise ImageDecodeError(error.message) from None
                raise
            if not np.all(outputs.get(IMAGE_OK_OUTPUT, True)):
                # Bytes that do not decode: `score_files` retries the batch image by image and
                # names the row.
                raise ImageDecodeError(NOT_AN_IMAGE)
            missing = [scores_output(name) for name in names if scores_output(name) not in outputs]
            if missing or EMBEDDING_OUTPUT not in outputs:
                raise ValueError(
                    f"{source}: the model's outputs lack {missing or [EMBEDDING_OUTPUT]}; "
                    f"expected a kattr export. Received outputs: {sorted(outputs)}"
                )
            # The metadata may not give the widths: every answer is checked too.
            widths = {attribute: int(np.shape(array)[-1]) for output, array in outputs.items()
                      if (attribute := attribute_of_scores_output(output)) is not None}
            check_value_names(value_names, widths, names_source, served=answered_by)
            scores = {name: np.asarray(outputs[scores_output(name)], np.float32) for name in names}
            return scores, np.asarray(outputs[EMBEDDING_OUTPUT], np.float32)

        return cls(
            predict, taxonomy, thresholds, source, close=client.close,
            image_shape=image_shape_from_metadata(metadata),
        )

    def predict(self, images: Sequence[bytes]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Scores and L2-normalised embeddings of encoded images (all must decode)."""
        scores, embeddings = self._predict(images)
        return scores, l2_normalise(embeddings)

    def score_files(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 32,
        view: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        appearance: bool = False,
    ) -> CatalogScores:
        """Scores image files in batches, aligned with `paths`; failed images get NaN rows.

        Args:
            paths: the image of each manifest row.
            batch_size: images per forward pass or request.
            view: None for the images as they are, or one of `VIEWS` (test-time augmentation).
            progress: called with (done, total) after each batch.
            appearance: also compute each image's `appearance_descriptor` (visual search).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
        paths = [str(path) for path in paths]
        count = len(paths)
        scores = {a.name: np.full((count, len(a.values)), np.nan, np.float32)
                  for a in self.taxonomy.attributes}
        embeddings: np.ndarray | None = None
        descriptors = (np.full((count, 3 * APPEARANCE_SIDE**2), np.nan, np.float32)
                       if appearance else None)
        failures: list[ImageFailure] = []
        for start in range(0, count, batch_size):
            batch = []
            for row in range(start, min(start + batch_size, count)):
                try:
                    data = Path(paths[row]).read_bytes()
                except OSError as error:
                    failures.append(ImageFailure(row, paths[row], _os_reason(error)))
                    continue
                try:
                    batch.append((row, view_bytes(data, view) if view else data))
                except (OSError, ValueError) as error:  # Pillow cannot decode it for the view
                    failures.append(ImageFailure(row, paths[row], f"cannot decode: {error}"))
            for rows, batch_scores, batch_embeddings in self._predict_rows(batch, failures, paths):
                for name, values in batch_scores.items():
                    scores[name][rows] = values
                if embeddings is None:
                    embeddings = np.full((count, batch_embeddings.shape[1]), np.nan, np.float32)
                embeddings[rows] = batch_embeddings
                if descriptors is not None:
                    data = dict(batch)
                    descriptors[rows] = [appearance_descriptor(data[row]) for row in rows]
            if progress is not None:
                progress(min(start + batch_size, count), count)
        if embeddings is None:
            embeddings = np.full((count, 0), np.nan, np.float32)
        return CatalogScores(
            scores=scores, embeddings=embeddings, taxonomy=self.taxonomy,
            thresholds=dict(self.thresholds), paths=paths,
            failures=sorted(failures, key=lambda f: f.row), source=dict(self.source),
            appearance=descriptors,
        )

    def _predict_rows(self, batch, failures, paths):
        """Yields (rows, scores, embeddings); a refused batch is retried image by image."""
        if not batch:
            return
        try:
            scores, embeddings = self.predict([data for _, data in batch])
        except ImageDecodeError as error:
            if len(batch) == 1:
                row = batch[0][0]
                failures.append(ImageFailure(row, paths[row], f"cannot decode: {error}"))
                return
            for item in batch:
                yield from self._predict_rows([item], failures, paths)
            return
        yield np.array([row for row, _ in batch]), scores, embeddings

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def l2_normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), as float32."""
    embeddings = np.asarray(embeddings, np.float32)
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def _os_reason(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found"
    return f"cannot read: {error.strerror or error}"


def _tf_reason(error) -> str:
    message = (error.message or type(error).__name__).strip().splitlines()[0]
    return message.split("[Op:")[0].strip() or type(error).__name__
