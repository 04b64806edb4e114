"""TF Serving's gRPC API over loopback: kattr-serve, and tensorflow_model_server when installed."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_support import expected_labels, expected_scores, image_bytes
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from kattr.server import ServerOptions, serve
from kattr.tf_serving_requests import predict_request

COLOURS = [(255, 0, 0), (0, 200, 0), (20, 40, 60)]


@pytest.fixture(scope="module")
def channel(model_server):
    with grpc.insecure_channel(model_server.grpc_target) as channel:
        yield channel


@pytest.fixture(scope="module")
def prediction_stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def images_request(colours=COLOURS, **arguments):
    images = [image_bytes(colour) for colour in colours]
    return predict_request({"image_bytes": images}, "standin", **arguments)


def test_predict_returns_every_output_and_the_version(prediction_stub):
    response = prediction_stub.Predict(images_request(), timeout=30)
    assert response.model_spec.name == "standin"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    for index, colour in enumerate(COLOURS):
        for attribute, scores in expected_scores(colour).items():
            np.testing.assert_allclose(outputs[f"{attribute}_scores"][index], scores, atol=1e-4)
            labels = [v.decode() for v in outputs[f"{attribute}_labels"][index] if v]
            assert labels == expected_labels(colour)[attribute]
    assert outputs["embedding"].shape == (len(COLOURS), 3)


def test_output_filter_and_specific_version(prediction_stub):
    request = images_request(COLOURS[:1], version=1)
    request.output_filter.append("colour_labels")
    response = prediction_stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["colour_labels"]
    assert tf.make_ndarray(response.outputs["colour_labels"]).tolist() == [[b"red", b"", b""]]


def test_model_metadata_has_the_signature_defs(prediction_stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "standin"
    response = prediction_stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    default = signature_map.signature_def["serving_default"]
    assert default.inputs["image_bytes"].dtype == tf.string.as_datatype_enum
    assert "occasion_labels" in default.outputs
    assert "predict_images" in signature_map.signature_def


def test_model_status(model_stub):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "standin"
    response = model_stub.GetModelStatus(request, timeout=30)
    [status] = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


def metadata_request(name="standin", fields=("signature_def",)):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    request.model_spec.name = name
    return request


def status_request(name="standin", version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def with_output_filter(alias: str):
    request = images_request(COLOURS[:1])
    request.output_filter.append(alias)
    return request


ERROR_CASES = [
    # name, call(prediction stub, model stub), status code, part of TF Serving's message
    ("unknown model", lambda p, m: p.Predict(predict_request(
        {"image_bytes": [b"x"]}, "nope"), timeout=30), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    ("unknown version", lambda p, m: p.Predict(images_request(version=9), timeout=30),
     grpc.StatusCode.NOT_FOUND, "Specific(standin, 9)"),
    ("wrong input name", lambda p, m: p.Predict(predict_request(
        {"image": [b"x"]}, "standin"), timeout=30), grpc.StatusCode.INVALID_ARGUMENT,
     "Signature input alias: image_bytes"),
    ("bytes that are not an image", lambda p, m: p.Predict(predict_request(
        {"image_bytes": [b"not an image"]}, "standin"), timeout=30),
     grpc.StatusCode.INVALID_ARGUMENT, "Unknown image file format"),
    ("float where bytes are expected", lambda p, m: p.Predict(predict_request(
        {"image_bytes": np.array([1.0], np.float32)}, "standin"), timeout=30),
     grpc.StatusCode.INVALID_ARGUMENT, "string"),
    ("unknown signature", lambda p, m: p.Predict(images_request(signature_name="nope"),
                                                 timeout=30),
     grpc.StatusCode.FAILED_PRECONDITION, '"nope" not found'),
    ("unknown output", lambda p, m: p.Predict(with_output_filter("colour"), timeout=30),
     grpc.StatusCode.INVALID_ARGUMENT, "output tensor alias not found in signature: colour"),
    ("metadata of unknown model", lambda p, m: p.GetModelMetadata(metadata_request("nope"),
                                                                  timeout=30),
     grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    ("unsupported metadata field", lambda p, m: p.GetModelMetadata(
        metadata_request(fields=["graph"]), timeout=30), grpc.StatusCode.INVALID_ARGUMENT,
     "Metadata field graph is not supported"),
    ("status of unknown model", lambda p, m: m.GetModelStatus(status_request("nope"), timeout=30),
     grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope"),
    ("status of unknown version", lambda p, m: m.GetModelStatus(status_request(version=9),
                                                                timeout=30),
     grpc.StatusCode.NOT_FOUND, "Could not find version 9 of model standin"),
]


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_errors_have_tf_serving_codes_and_serving_continues(
    prediction_stub, model_stub, call, code, message
):
    with pytest.raises(grpc.RpcError) as raised:
        call(prediction_stub, model_stub)
    assert raised.value.code() == code
    assert message in raised.value.details()
    response = prediction_stub.Predict(images_request(COLOURS[:1]), timeout=30)
    assert tf.make_ndarray(response.outputs["colour_labels"]).tolist() == [[b"red", b"", b""]]


def test_oversized_message_is_resource_exhausted(serving_base_path):
    options = ServerOptions(rest_port=None, grpc_port=0, max_request_bytes=4096)
    with serve(serving_base_path, options) as handle, grpc.insecure_channel(
        handle.grpc_target
    ) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        big = predict_request({"image_bytes": [b"x" * 10_000]}, "standin")
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(big, timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        response = stub.Predict(images_request(COLOURS[:1]), timeout=30)
        assert response.model_spec.version.value == 1
