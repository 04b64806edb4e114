"""Batch scoring of a catalog on Apache Beam (the Python API behind `kattr-batch`).

Reads one or more manifest shards (CSV/Parquet), scores every image with an exported kattr
SavedModel through Beam's `RunInference`, and writes sharded scores and embeddings that
`kattr-enrich`, `kattr-audit`, `kattr-select` and `kattr-index` read with `--scores DIR`
(`kattr.apps.stored_scores`). Images that cannot be read or decoded are written to
`failures-*.jsonl` with their manifest, row and reason, and counted: never dropped silently.

The same pipeline runs on the DirectRunner (this machine) or, with `--runner`, on Dataflow,
Flink or Spark; every other Beam pipeline option passes through (see README, "At catalog
scale").

Example:
    >>> result = score_on_beam(["catalog/labels.csv"], "exports/shirts/3", "scores/run1")
    >>> result.scored, result.failed
    (1198, 2)
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)
from apache_beam.options.pipeline_options import PipelineOptions

from kattr.apps.stored_scores import BATCH_RECORD, FAILURES_PREFIX, SCORES_PREFIX, image_key
from kattr.client.decode import NOT_AN_IMAGE
from kattr.serving_contract import (
    DEFAULT_SIGNATURE,
    EMBEDDING_OUTPUT,
    IMAGE_OK_OUTPUT,
    scores_output,
)

__all__ = ["BatchResult", "SavedModelHandler", "build_pipeline", "score_on_beam"]

METRICS_NAMESPACE = "kattr"
_FAILED = "failed"


class SavedModelHandler(ModelHandler):
    """RunInference model handler for a kattr export, loaded with `tf.saved_model.load`.

    Beam's stock `TFModelHandlerTensor` loads models with `tf.keras.models.load_model`. Under
    Keras 3 (TensorFlow >= 2.16) that reads only `.keras`/`.h5` files and refuses a SavedModel
    directory, and it would feed decoded tensors, not the encoded bytes our serving signature
    takes. This handler loads the export as TF Serving does and calls its signature on encoded
    image bytes, so batch scores equal served scores.

    Bytes that do not decode come back with the export's `image_ok` False and become a
    `{"error": reason}` inference; with an export older than `image_ok` a failing batch is
    retried image by image, so the others are scored.

    Args:
        model_dir: an export version directory (or a local base path: its highest version).
        signature: the signature to call.
        batch_size: the most images per call.

    Example:
        >>> handler = KeyedModelHandler(SavedModelHandler("exports/shirts/3"))
        >>> keyed_bytes | RunInference(handler)
    """

    def __init__(self, model_dir: str, signature: str = DEFAULT_SIGNATURE, batch_size: int = 32):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.model_dir = str(model_dir)
        self.signature = signature

    def load_model(self):
        from kattr.client.transports import InProcessTransport

        return InProcessTransport(self.model_dir, self.signature)

    def run_inference(
        self, batch: Sequence[bytes], model, inference_args=None
    ) -> Iterable[PredictionResult]:
        import grpc

        from kattr.server.errors import ServingError

        try:
            outputs = model.predict(list(batch))
        except ServingError as error:
            if error.code != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            if len(batch) == 1:
                return [PredictionResult(batch[0], {"error": f"cannot decode: {error.message}"})]
            return [result for image in batch for result in self.run_inference([image], model)]
        ok = np.asarray(outputs.pop(IMAGE_OK_OUTPUT, np.ones(len(batch), bool))).reshape(-1)
        return [
            PredictionResult(image, {name: values[index] for name, values in outputs.items()})
            if ok[index] else PredictionResult(image, {"error": f"cannot decode: {NOT_AN_IMAGE}"})
            for index, image in enumerate(batch)
        ]

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


def _read_manifest(manifest: str):
    """A manifest shard from any Beam filesystem, parsed by `kattr.labels.read_manifest`."""
    import tempfile

    from kattr.labels import read_manifest

    if _is_local(manifest):
        return read_manifest(manifest)
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, os.path.basename(manifest))
        with FileSystems.open(manifest) as source, open(local, "wb") as copy:
            copy.write(source.read())
        return read_manifest(local)


def _is_local(path: str) -> bool:
    return "://" not in path


def _manifest_rows(manifest: str, image_root: str | None, image_column: str) -> Iterator:
    """`(path, manifest, row)` per row of one manifest shard; blank cells go to failures."""
    from kattr.labels import is_blank

    frame = _read_manifest(manifest)
    if image_column not in frame.columns:
        raise ValueError(
            f"{manifest}: no image column {image_column!r} (set --image-column). "
            f"Received columns: {list(frame.columns)}"
        )
    root = image_root if image_root is not None else os.path.dirname(manifest)
    for row, cell in enumerate(frame[image_column]):
        if is_blank(cell):
            yield beam.pvalue.TaggedOutput(
                _FAILED, _failure(manifest, row, "", "blank image path")
            )
            continue
        path = str(cell).strip()
        if _is_local(path) and not os.path.isabs(path):
            path = FileSystems.join(root, path) if not _is_local(root) else os.path.join(
                root, path)
        yield image_key(path), manifest, row


def _failure(manifest: str, row: int, path: str, reason: str) -> dict:
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, _FAILED).inc()
    return {"manifest": manifest, "row": row, "path": path, "reason": reason}


class _ReadImage(beam.DoFn):
    """`(path, manifest, row)` -> `((path, manifest, row), bytes)`; unreadable files go to
    failures."""

    def process(self, element):
        path, manifest, row = element
        try:
            with FileSystems.open(path) as file:
                data = file.read()
        except Exception as error:  # any filesystem's not-found or I/O error
            reason = "file not found" if isinstance(error, FileNotFoundError) else (
                f"cannot read: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
            )
            yield beam.pvalue.TaggedOutput(_FAILED, _failure(manifest, row, path, reason))
            return
        yield element, data


class _ToRecord(beam.DoFn):
    """`((path, manifest, row), PredictionResult)` -> one JSON line of scores, or a failure."""

    def __init__(self, attributes: Sequence[str], appearance: bool):
        self.attributes = list(attributes)
        self.appearance = appearance

    def process(self, element):
        (path, manifest, row), result = element
        outputs = result.inference
        if "error" in outputs:
            yield beam.pvalue.TaggedOutput(
                _FAILED, _failure(manifest, row, path, str(outputs["error"]))
            )
            return
        record = {
            "path": path,
            "scores": {name: _floats(outputs[scores_output(name)]) for name in self.attributes},
            "embedding": _floats(outputs[EMBEDDING_OUTPUT]),
        }
        if self.appearance:
            from kattr.apps.scoring import appearance_descriptor

            record["appearance"] = _floats(appearance_descriptor(result.example))
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "scored").inc()
        yield json.dumps(record)


def _floats(values) -> list[float]:
    return [float(value) for value in np.asarray(values, np.float32).reshape(-1)]


def build_pipeline(
    pipeline: beam.Pipeline,
    manifests: Sequence[str],
    model_dir: str,
    output: str,
    attributes: Sequence[str],
    image_root: str | None = None,
    image_column: str = "image",
    appearance: bool = False,
    batch_size: int = 32,
    num_shards: int = 0,
) -> None:
    """Adds the scoring transforms to `pipeline` (see the module docstring for the outputs).

    Args:
        pipeline: the Beam pipeline.
        manifests: manifest files (already expanded).
        model_dir: the export version directory.
        output: the output folder.
        attributes: the export's attribute names.
        image_root: folder of relative image paths (default: each manifest's folder).
        image_column: the manifests' image column.
        appearance: also write each image's appearance descriptor (for `kattr-index`).
        batch_size: the most images per model call.
        num_shards: score shards to write; 0 lets the runner decide.
    """
    rows = (
        pipeline
        | "Manifests" >> beam.Create(list(manifests))
        | "Rows" >> beam.FlatMap(_manifest_rows, image_root, image_column).with_outputs(
            _FAILED, main="rows")
    )
    images = (
        rows.rows
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.ParDo(_ReadImage()).with_outputs(_FAILED, main="images")
    )
    handler = KeyedModelHandler(SavedModelHandler(model_dir, batch_size=batch_size))
    records = (
        images.images
        | "Score" >> RunInference(handler)
        | "Records" >> beam.ParDo(_ToRecord(attributes, appearance)).with_outputs(
            _FAILED, main="records")
    )
    records.records | "WriteScores" >> beam.io.WriteToText(
        os.path.join(output, SCORES_PREFIX), file_name_suffix=".jsonl", num_shards=num_shards
    )
    (
        (rows[_FAILED], images[_FAILED], records[_FAILED])
        | "Failures" >> beam.Flatten()
        | "FailureLines" >> beam.Map(json.dumps)
        | "WriteFailures" >> beam.io.WriteToText(
            os.path.join(output, FAILURES_PREFIX), file_name_suffix=".jsonl", num_shards=1)
    )


@dataclass
class BatchResult:
    """What a `score_on_beam` run did.

    Args:
        output: the output folder.
        scored: images scored.
        failed: images that could not be scored (each in `failures-*.jsonl`).
        failures: the first 1,000 failures as `{"manifest", "row", "path", "reason"}` (row:
            0-based data row of that manifest).
        seconds: wall-clock time of the pipeline.
    """

    output: str
    scored: int
    failed: int
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def score_on_beam(
    manifests: Sequence[str | os.PathLike],
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    image_column: str = "image",
    appearance: bool = False,
    batch_size: int = 32,
    num_shards: int = 0,
    pipeline_args: Sequence[str] = (),
    overwrite: bool = False,
) -> BatchResult:
    """Scores the images of `manifests` with the export at `model_dir` on Apache Beam.

    Writes `scores-*.jsonl`, `failures-*.jsonl` and, once both are complete, `batch.json`
    (the export's `kattr.json`, the settings and the counts) into `output`.

    Args:
        manifests: manifest files or glob patterns (CSV/Parquet shards).
        model_dir: an export version directory, or a local base path (its highest version).
        output: a folder on any Beam filesystem (local, ``gs://``, ...); must not hold an
            earlier run unless `overwrite`.
        image_root: folder of relative image paths (default: each manifest's folder).
        image_column: the manifests' image column.
        appearance: also store appearance descriptors (needed by `kattr-index --scores`).
        batch_size: the most images per model call.
        num_shards: score shards to write; 0 lets the runner decide.
        pipeline_args: Beam pipeline options, e.g. ``["--runner=DirectRunner",
            "--direct_num_workers=2", "--direct_running_mode=multi_processing"]``.
        overwrite: delete an earlier run's files in `output` first.

    Raises:
        FileNotFoundError: a manifest pattern that matches nothing, or no kattr.json.
        ValueError: an output folder that holds an earlier run, or a bad argument.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
    files = _expand(manifests)
    version_dir, metadata = _export_metadata(str(model_dir))
    output = str(output)
    _prepare_output(output, overwrite)
    names = [attribute["name"] for attribute in metadata["taxonomy"]["attributes"]]
    category_output = metadata["taxonomy"].get("category_output")
    if category_output and category_output["name"] not in names:
        names.append(category_output["name"])
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
        build_pipeline(
            pipeline, files, version_dir, output, names, image_root=(
                None if image_root is None else str(image_root)),
            image_column=image_column, appearance=appearance, batch_size=batch_size,
            num_shards=num_shards,
        )
    seconds = time.perf_counter() - start
    failures = _read_failures(output)
    scored = sum(1 for _ in _lines(output, SCORES_PREFIX))
    record = {
        "model_dir": version_dir, "manifests": files,
        "image_root": None if image_root is None else str(image_root),
        "image_column": image_column, "appearance": appearance,
        "scored": scored, "failed": len(failures), "seconds": round(seconds, 3),
        "pipeline_args": list(pipeline_args), "metadata": metadata,
    }
    _write_record(record, FileSystems.join(output, BATCH_RECORD))
    return BatchResult(output, scored, len(failures), failures[:1000], seconds)


def _expand(patterns: Sequence[str | os.PathLike]) -> list[str]:
    files = []
    for pattern in patterns:
        matched = FileSystems.match([str(pattern)])[0].metadata_list
        if not matched:
            raise FileNotFoundError(f"{pattern}: no manifest matches")
        files.extend(sorted(item.path for item in matched))
    return files


def _export_metadata(model_dir: str) -> tuple[str, dict]:
    """The version directory and its `kattr.json`; a remote export must name its version."""
    from kattr.apps.scoring import taxonomy_from_metadata
    from kattr.client.model_files import read_metadata, resolve_version_dir

    version_dir = str(resolve_version_dir(model_dir)) if _is_local(model_dir) else model_dir
    metadata = read_metadata(version_dir)
    taxonomy_from_metadata(metadata)  # a bad kattr.json fails before the pipeline starts
    return version_dir, metadata


def _shards(output: str, prefix: str) -> list[str]:
    pattern = FileSystems.join(output, f"{prefix}-*.jsonl")
    return sorted(item.path for item in FileSystems.match([pattern])[0].metadata_list)


def _prepare_output(output: str, overwrite: bool) -> None:
    earlier = _shards(output, SCORES_PREFIX) + _shards(output, FAILURES_PREFIX)
    record = FileSystems.join(output, BATCH_RECORD)
    if FileSystems.exists(record):
        earlier.append(record)
    if earlier and not overwrite:
        raise ValueError(
            f"{output}: holds an earlier kattr-batch run ({len(earlier)} file(s)); choose another "
            "--output or pass --overwrite"
        )
    if earlier:
        FileSystems.delete(earlier)
    if _is_local(output):
        os.makedirs(output, exist_ok=True)


def _lines(output: str, prefix: str) -> Iterator[str]:
    for shard in _shards(output, prefix):
        with FileSystems.open(shard) as file:
            for line in io.TextIOWrapper(file, encoding="utf-8"):
                if line.strip():
                    yield line


def _write_record(record: dict, path: str) -> None:
    """`batch.json`, written last: atomically on a local disk, whole-object on a bucket."""
    if _is_local(path):
        from kattr.run_dir import write_json

        write_json(record, path)
        return
    with FileSystems.create(path) as file:
        file.write(json.dumps(record, indent=2).encode("utf-8"))


def _read_failures(output: str) -> list[dict]:
    failures = [json.loads(line) for line in _lines(output, FAILURES_PREFIX)]
    return sorted(failures, key=lambda item: (item["manifest"], item["row"], item["path"]))
