"""SavedModel warmup records: `assets.extra/tf_serving_warmup_requests`.

TF Serving (with `--enable_model_warmup`, the default) and `kattr-serve` replay these
`PredictionLog` records when they load a version, so the first real request does not pay for
graph tracing and memory allocation.

Example:
    >>> request = predict_request({"image_bytes": [jpeg_bytes]})
    >>> write_warmup_requests(export_dir / WARMUP_PATH, [request])
    1
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from kattr.serving_contract import WARMUP_PATH

__all__ = [
    "MAX_WARMUP_RECORDS",
    "WARMUP_PATH",
    "WarmupError",
    "read_warmup_requests",
    "write_warmup_requests",
]

MAX_WARMUP_RECORDS = 1000  # TF Serving refuses files with more records


class WarmupError(ValueError):
    """A warmup file that TF Serving would not accept; the message names the file and record."""


def write_warmup_requests(
    path: str | os.PathLike, requests: Iterable[predict_pb2.PredictRequest]
) -> int:
    """Writes predict requests as a TFRecord of `PredictionLog`, atomically; returns the count.

    Args:
        path: the warmup file, normally `<version dir>/` + `WARMUP_PATH`; folders are created.
        requests: 1 to `MAX_WARMUP_RECORDS` requests (see `kattr.server.protos.predict_request`).
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
    temporary = path.with_name(f".{path.name}.tmp")
    with tf.io.TFRecordWriter(str(temporary)) as writer:
        for record in records:
            writer.write(record)
    os.replace(temporary, path)
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
