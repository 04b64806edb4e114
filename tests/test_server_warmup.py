"""Warmup records: the TFRecord of PredictionLog that TF Serving and kattr-serve replay."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from kattr.tf_serving_requests import (
    MAX_WARMUP_RECORDS,
    WARMUP_PATH,
    WarmupError,
    predict_request,
    read_warmup_requests,
    write_warmup_requests,
)


def test_requests_round_trip_as_prediction_logs(tmp_path):
    requests = [
        predict_request({"image_bytes": [b"\x89PNG-one", b"two"]}),
        predict_request({"images": np.ones((1, 2, 2, 3), np.float32)}, signature_name="other"),
    ]
    path = tmp_path / "export" / WARMUP_PATH
    assert write_warmup_requests(path, requests) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["tf_serving_warmup_requests"]

    raw = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
           for record in tf.data.TFRecordDataset(str(path))]
    assert [log.WhichOneof("log_type") for log in raw] == ["predict_log", "predict_log"]

    read = read_warmup_requests(path)
    assert read == requests
    assert tf.make_ndarray(read[0].inputs["image_bytes"]).tolist() == [b"\x89PNG-one", b"two"]
    assert read[1].model_spec.signature_name == "other"


@pytest.mark.parametrize("count", [0, MAX_WARMUP_RECORDS + 1])
def test_refuses_counts_tf_serving_refuses(tmp_path, count):
    request = predict_request({"image_bytes": [b"x"]})
    with pytest.raises(WarmupError, match=f"Received: {count}"):
        write_warmup_requests(tmp_path / "warmup", [request] * count)
    assert not (tmp_path / "warmup").exists()


def test_reading_rejects_logs_that_are_not_predict_logs(tmp_path):
    path = tmp_path / "warmup"
    log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog())
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(log.SerializeToString())
    with pytest.raises(WarmupError, match="record 0 is not a predict_log"):
        read_warmup_requests(path)


def test_reading_rejects_a_file_that_is_not_a_tfrecord(tmp_path):
    path = tmp_path / "warmup"
    path.write_bytes(b"definitely not a tfrecord file")
    with pytest.raises(WarmupError, match="not a TFRecord file"):
        read_warmup_requests(path)
