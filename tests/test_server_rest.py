"""TF Serving's REST API over loopback: kattr-serve, and tensorflow_model_server when installed."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serving_support import (
    KATTR_SERVE,
    expected_labels,
    expected_scores,
    image_bytes,
    publish_version,
    require_server,
    start_server,
)

from kattr.server import ServerOptions, serve
from kattr.server.rest import RestApi

COLOURS = [(255, 0, 0), (0, 200, 0), (20, 40, 60), (250, 240, 200)]
SERVER_KINDS = (KATTR_SERVE, "tensorflow_model_server")


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict, str]:
    """(status, JSON body, content type) of one request."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Content-Type"]


def b64_image(colour) -> dict:
    return {"b64": base64.b64encode(image_bytes(colour)).decode()}


def predict(server, document: dict, path: str = "") -> tuple[int, dict, str]:
    url = f"{server.rest_url}/v1/models/{server.model_name}{path}:predict"
    return http("POST", url, json.dumps(document).encode())


def assert_matches_colour(prediction: dict, colour) -> None:
    for attribute, scores in expected_scores(colour).items():
        np.testing.assert_allclose(prediction[f"{attribute}_scores"], scores, atol=1e-4)
        labels = [label for label in prediction[f"{attribute}_labels"] if label]
        assert labels == expected_labels(colour)[attribute]
    colour_scores = expected_scores(colour)["colour"]
    np.testing.assert_allclose(prediction["embedding"], colour_scores, atol=1e-4)


def test_status_of_the_model_and_of_a_version(model_server):
    ok = {"error_code": "OK", "error_message": ""}
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]}
    url = f"{model_server.rest_url}/v1/models/{model_server.model_name}"
    assert http("GET", url) == (200, expected, "application/json")
    assert http("GET", url + "/versions/1")[:2] == (200, expected)


def test_paths_are_case_insensitive_as_in_tf_serving(model_server):
    status, document, _ = http("GET", f"{model_server.rest_url}/V1/Models/standin/Versions/1")
    assert status == 200
    assert document["model_version_status"][0]["state"] == "AVAILABLE"


def test_unexpected_failures_answer_500_and_other_paths_404():
    class BrokenStore:
        def servable(self, *arguments):
            raise RuntimeError("boom")

    api = RestApi(BrokenStore())
    status, body = api.handle("POST", "/v1/models/standin:predict", b'{"instances": ["a"]}')
    assert (status, json.loads(body)) == (500, {"error": "Internal error: boom"})
    status, body = api.handle("GET", "/healthz", b"")
    assert status == 404
    assert json.loads(body)["error"] == "Not found: GET /healthz"


def test_metadata_lists_the_signatures(model_server):
    url = f"{model_server.rest_url}/v1/models/{model_server.model_name}/metadata"
    status, document, _ = http("GET", url)
    assert status == 200
    assert document["model_spec"] == {"name": "standin", "signature_name": "", "version": "1"}
    assert list(document["metadata"]["signature_def"]) == ["signature_def"]
    signatures = document["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert set(default["outputs"]) == {
        "colour_scores", "colour_labels", "occasion_scores", "occasion_labels", "embedding"
    }
    shape = default["outputs"]["colour_scores"]["tensor_shape"]
    assert [dim["size"] for dim in shape["dim"]] == ["-1", "3"]
    assert shape["unknown_rank"] is False
    assert signatures["predict_images"]["inputs"]["images"]["dtype"] == "DT_FLOAT"


def test_row_format_predictions_are_objects_per_image(model_server):
    status, document, _ = predict(model_server, {"instances": [b64_image(c) for c in COLOURS]})
    assert status == 200
    assert len(document["predictions"]) == len(COLOURS)
    for prediction, colour in zip(document["predictions"], COLOURS, strict=True):
        assert_matches_colour(prediction, colour)


def test_columnar_format_outputs_are_keyed_by_name(model_server):
    document = {"signature_name": "serving_default",
                "inputs": {"image_bytes": [b64_image(c) for c in COLOURS[:2]]}}
    status, response, _ = predict(model_server, document, "/versions/1")
    assert status == 200
    outputs = response["outputs"]
    for index, colour in enumerate(COLOURS[:2]):
        assert_matches_colour({name: value[index] for name, value in outputs.items()}, colour)


def test_predict_images_signature_takes_pixel_lists(model_server):
    pixels = np.full((32, 32, 3), [0.0, 0.0, 255.0]).tolist()
    document = {"signature_name": "predict_images", "instances": [pixels]}
    status, response, _ = predict(model_server, document)
    assert status == 200
    assert response["predictions"][0]["colour_labels"] == ["", "", "blue"]


def post(server, path, body):
    return http("POST", f"{server.rest_url}/v1/models/{path}", body)


def get(server, path):
    return http("GET", f"{server.rest_url}/v1/models/{path}")


RED = b64_image((255, 0, 0))
ERROR_CASES = [
    # name, request, HTTP status, part of TF Serving's message
    ("malformed JSON", lambda s: post(s, "standin:predict", b'{"instances": [}'), 400,
     "JSON Parse error"),
    ("wrong row input name", lambda s: post(s, "standin:predict", json.dumps(
        {"instances": [{"image": RED}]}).encode()), 400, "does not have named input: image"),
    ("wrong columnar input name", lambda s: post(s, "standin:predict", json.dumps(
        {"inputs": {"image": [RED]}}).encode()), 400, "Missing named input: image_bytes"),
    ("bytes that are not an image", lambda s: post(s, "standin:predict", json.dumps(
        {"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}).encode()), 400,
     "Unknown image file format"),
    ("URL-safe base64", lambda s: post(s, "standin:predict", json.dumps(
        {"instances": [{"b64": "-_-_"}]}).encode()), 400, "Unable to base64 decode"),
    ("no instances or inputs", lambda s: post(s, "standin:predict", b"{}"), 400,
     "Missing 'inputs' or 'instances' key"),
    ("unknown signature", lambda s: post(s, "standin:predict", json.dumps(
        {"signature_name": "nope", "instances": [RED]}).encode()), 400,
     'Serving signature name: "nope" not found'),
    ("unknown model", lambda s: post(s, "nope:predict", json.dumps({"instances": [RED]}).encode()),
     404, "Servable not found for request: Latest(nope)"),
    ("unknown version", lambda s: post(s, "standin/versions/9:predict", json.dumps(
        {"instances": [RED]}).encode()), 404, "not found for request: Specific(standin, 9)"),
    ("unknown label", lambda s: post(s, "standin/labels/stable:predict", json.dumps(
        {"instances": [RED]}).encode()), 400, "Unrecognized servable version label: stable"),
    ("status of unknown model", lambda s: get(s, "nope"), 404,
     "Could not find any versions of model nope"),
    ("status of unknown version", lambda s: get(s, "standin/versions/9"), 404,
     "Could not find version 9 of model standin"),
    ("POST to metadata", lambda s: post(s, "standin/metadata", b"{}"), 400, "Malformed request"),
    ("GET of predict", lambda s: get(s, "standin:predict"), 400, "Malformed request"),
]


@pytest.mark.parametrize(
    ("request_sender", "status", "message"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_errors_have_tf_serving_status_and_message_and_serving_continues(
    model_server, request_sender, status, message
):
    got_status, document, content_type = request_sender(model_server)
    assert (got_status, content_type) == (status, "application/json")
    assert message in document["error"]
    ok_status, response, _ = predict(model_server, {"instances": [RED]})
    assert ok_status == 200
    assert_matches_colour(response["predictions"][0], (255, 0, 0))


def test_concurrent_requests_each_get_their_own_answer(model_server):
    def one(index: int):
        colour = COLOURS[index % len(COLOURS)]
        status, document, _ = predict(model_server, {"instances": [b64_image(colour)]})
        return status, document, colour

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(24)))
    for status, document, colour in results:
        assert status == 200
        assert_matches_colour(document["predictions"][0], colour)


def test_oversized_body_is_refused_without_stopping_the_server(serving_base_path):
    options = ServerOptions(rest_port=0, grpc_port=None, max_request_bytes=4096)
    with serve(serving_base_path, options) as handle:
        url = f"{handle.rest_url}/v1/models/standin:predict"
        status, document, _ = http("POST", url, b" " * 10_000)
        assert status == 413
        assert "exceeds the limit of 4096 bytes" in document["error"]
        small = json.dumps({"instances": [RED]}).encode()
        assert http("POST", url, small)[0] == 200


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_hot_swap_serves_the_new_version_without_a_failed_request(kind, tmp_path):
    require_server(kind)
    base_path = tmp_path / "standin"
    publish_version(base_path, 1, embedding_scale=1.0)
    with start_server(kind, base_path, poll_seconds=0.1) as server:
        results: list[tuple[int, float]] = []
        stop = threading.Event()

        def keep_predicting():
            while not stop.is_set():
                status, document, _ = predict(server, {"instances": [RED]})
                embedding = document["predictions"][0]["embedding"][0] if status == 200 else None
                results.append((status, embedding))
                time.sleep(0.01)

        client = threading.Thread(target=keep_predicting)
        client.start()
        try:
            publish_version(base_path, 2, embedding_scale=2.0)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not results or results[-1][1] != 2.0):
                time.sleep(0.05)
            time.sleep(0.2)
        finally:
            stop.set()
            client.join()
        status, document, _ = get(server, "standin")
    assert {status for status, _ in results} == {200}
    scales = [round(embedding, 4) for _, embedding in results]
    assert scales[0] == 1.0 and scales[-1] == 2.0
    assert scales == sorted(scales)  # never back to the old version once the new one answered
    assert status == 200
    states = {entry["version"]: entry["state"] for entry in document["model_version_status"]}
    assert states == {"2": "AVAILABLE", "1": "END"}
