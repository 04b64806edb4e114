"""TF Serving requests that the exporter, the client and kattr-serve all build or read.

- `predict_request`: a `PredictRequest` (the gRPC client, warmup records);
- `write_warmup_requests` / `read_warmup_requests`: the SavedModel's warmup records,
  `assets.extra/tf_serving_warmup_requests`. TF Serving (with `--enable_model_warmup`, the
  default) and `kattr-serve` replay these `PredictionLog` records when they load a version, so
  the first real request does not pay for graph tracing and memory allocation.

It depends on TensorFlow and the tensorflow-serving-api protos only, so the exporter does not
import the dev server or the client.

Example:
    >>> request = predict_request({"image_bytes": [jpeg_bytes]}, model_name="shirts")
    >>> write_warmup_requests(export_dir / WARMUP_PATH, [request])
    1
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from kattr._atomic import atomic_path
from kattr.serving_contract import DEFAULT_SIGNATURE, WARMUP_PATH

__all__ = [
    "MAX_WARMUP_RECORDS",
    "WARMUP_PATH",
    "WarmupError",
    "predict_request",
    "read_warmup_requests",
    "write_warmup_requests",
]

MAX_WARMUP_RECORDS = 1000  # TF Serving refuses files with more records


def predict_request(
    inputs: Mapping[str, np.ndarray | list],
    model_name: str = "",
    signature_name: str = DEFAULT_SIGNATURE,
    version: int | None = None,
) -> predict_pb2.PredictRequest:
    """A `PredictRequest` with one `TensorProto` per input (lists of bytes become tf.string)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


class WarmupError(ValueError):
    """A warmup file that TF Serving would not accept; the message names the file and record."""


def write_warmup_requests(
    path: str | os.PathLike, requests: Iterable[predict_pb2.PredictRequest]
) -> int:
    """Writes predict requests as a TFRecord of `PredictionLog`, atomically; returns the count.

    Args:
        path: the warmup file, normally `<version dir>/` + `WARMUP_PATH`; folders are created.
        requests: 1 to `MAX_WARMUP_RECORDS` requests (see `predict_request`).
    """
    records = [
        prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        ).SerializeToString()
        for request in requests
    ]
    if not 1 <= len(records) <= MAX_WARMUP_RECORDS:
        raise WarmupError(
            f"{path}: a warmup file holds 1 to {MAX_WARMUP_RECORDS} requests. "
            f"Received: {len(records)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, tf.io.TFRecordWriter(str(temporary)) as writer:
        for record in records:
            writer.write(record)
    return len(records)


def read_warmup_requests(path: str | os.PathLike) -> list[predict_pb2.PredictRequest]:
    """Reads the predict requests of a warmup file.

    Raises:
        WarmupError: a record that is not a `PredictionLog` with a `predict_log`, or more than
            `MAX_WARMUP_RECORDS` records.
    """
    requests = []
    try:
        for index, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
            if index >= MAX_WARMUP_RECORDS:
                raise WarmupError(
                    f"{path}: more than {MAX_WARMUP_RECORDS} warmup records; TF Serving refuses it"
                )
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if log.WhichOneof("log_type") != "predict_log":
                raise WarmupError(
                    f"{path}: record {index} is not a predict_log (kattr-serve replays Predict "
                    f"requests only). Received: {log.WhichOneof('log_type')}"
                )
            requests.append(log.predict_log.request)
    except (tf.errors.OpError, DecodeError) as error:
        raise WarmupError(f"{path}: not a TFRecord file of PredictionLog: {error}") from None
    return requests
