"""TF Serving's JSON tensor rules: request parsing and response formatting (no server)."""

from __future__ import annotations

import base64
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from kattr.server.errors import ServingError
from kattr.server.tensor_json import error_body, format_predict_response, parse_predict_request

ONE_STRING_INPUT = {"image_bytes": tf.string}
TWO_INPUTS = {"images": tf.float32, "ids": tf.int64}


def parse(document, dtypes=ONE_STRING_INPUT):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_predict_request(body, lambda signature: dtypes)


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def test_row_format_single_input_decodes_b64_bytes():
    request = parse({"instances": [b64(b"\x00\xffjpeg"), b64(b"png")]})
    assert request.format == "row"
    assert request.signature_name == ""
    assert request.inputs["image_bytes"].tolist() == [b"\x00\xffjpeg", b"png"]


def test_row_format_objects_stack_every_named_input():
    request = parse(
        {
            "signature_name": "predict_images",
            "instances": [{"images": [[1, 2.5]], "ids": 7}, {"images": [[3, 4]], "ids": 8}],
        },
        TWO_INPUTS,
    )
    assert request.signature_name == "predict_images"
    assert request.inputs["images"].dtype == np.float32
    np.testing.assert_array_equal(request.inputs["images"], [[[1, 2.5]], [[3, 4]]])
    np.testing.assert_array_equal(request.inputs["ids"], np.array([7, 8], dtype=np.int64))


def test_columnar_format_plain_value_and_named_object():
    plain = parse({"inputs": [b64(b"a"), b64(b"b")]})
    assert plain.format == "columnar"
    assert plain.inputs["image_bytes"].tolist() == [b"a", b"b"]
    named = parse({"inputs": {"images": [[0.5]], "ids": [3]}}, TWO_INPUTS)
    assert named.inputs["images"].shape == (1, 1)
    assert named.inputs["ids"].tolist() == [3]


def test_plain_json_strings_are_utf8_bytes():
    assert parse({"instances": ["caf\u00e9"]}).inputs["image_bytes"].tolist() == [b"caf\xc3\xa9"]


@pytest.mark.parametrize(
    ("document", "dtypes", "message"),
    [
        (b"", ONE_STRING_INPUT, "JSON Parse error: The document is empty"),
        (b"{not json", ONE_STRING_INPUT, "JSON Parse error:"),
        (b"[1, 2]", ONE_STRING_INPUT, "Is not object"),
        ({"signature_name": 3, "instances": []}, ONE_STRING_INPUT, "must be a string value"),
        ({"instances": [b64(b"a")], "inputs": []}, ONE_STRING_INPUT, "expecting only one of"),
        ({"signature_name": "x"}, ONE_STRING_INPUT, "Missing 'inputs' or 'instances' key"),
        ({"instances": {}}, ONE_STRING_INPUT, "to be an list/array"),
        ({"instances": []}, ONE_STRING_INPUT, "No values in 'instances' array"),
        ({"instances": [{"image": b64(b"a")}]}, ONE_STRING_INPUT, "named input: image"),
        ({"inputs": {"images": [[1.0]]}}, TWO_INPUTS, "Missing named input: ids"),
        ({"instances": [1.0, 2.0]}, TWO_INPUTS, "instances is a plain list"),
        ({"inputs": [1.0]}, TWO_INPUTS, "inputs is a plain value/list"),
        ({"instances": [{"b64": "a-_b"}]}, ONE_STRING_INPUT, "Unable to base64 decode"),
        ({"inputs": [{"b64": 1}]}, ONE_STRING_INPUT, "not formatted correctly for base64"),
        ({"instances": [1.5]}, ONE_STRING_INPUT, "is not of expected type: string"),
        ({"inputs": {"images": ["x"], "ids": [1]}}, TWO_INPUTS, "is not of expected type: float"),
        ({"inputs": {"images": [1.0], "ids": [1.5]}}, TWO_INPUTS, "not of expected type: int64"),
        ({"inputs": {"images": [16777217], "ids": [1]}}, TWO_INPUTS, "without loss of precision"),
        ({"inputs": {"images": [[1.0], [1.0, 2.0]], "ids": [1]}}, TWO_INPUTS, "unexpected size"),
        ({"inputs": {"images": [[1.0], 2.0], "ids": [1]}}, TWO_INPUTS, "found at incorrect level"),
        (
            {"instances": [{"images": [1.0], "ids": 1}, {"images": [1.0, 2.0], "ids": 2}]},
            TWO_INPUTS,
            "Expecting tensor size: 1 but got: 2",
        ),
        ({"instances": [{"images": [1.0]}]}, TWO_INPUTS, "keys must be equal to: ids,images"),
    ],
)
def test_malformed_requests_are_invalid_argument_with_tf_serving_messages(
    document, dtypes, message
):
    with pytest.raises(ServingError) as raised:
        parse(document, dtypes)
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert raised.value.http_status == 400
    assert message in raised.value.message


def test_resolver_errors_pass_through():
    def unknown_model(signature):
        raise ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found")

    with pytest.raises(ServingError) as raised:
        parse_predict_request(b'{"instances": ["a"]}', unknown_model)
    assert raised.value.http_status == 404


OUTPUTS = {
    "colour_scores": np.array([[0.2, 0.8], [1 / 3, 0.0]], dtype=np.float32),
    "colour_labels": np.array([[b"", b"blue"], [b"", b""]], dtype=object),
    "thumbnail_bytes": np.array([b"\x89PNG", b"\xff"], dtype=object),
}


def test_row_response_is_a_list_of_objects_with_float32_shortest_form():
    predictions = format_predict_response(OUTPUTS, "row")["predictions"]
    assert predictions[0] == {
        "colour_scores": [0.2, 0.8],
        "colour_labels": ["", "blue"],
        "thumbnail_bytes": {"b64": base64.b64encode(b"\x89PNG").decode()},
    }
    assert predictions[1]["colour_scores"] == [0.33333334, 0.0]
    assert "0.2," in json.dumps(predictions)  # not 0.20000000298023224


def test_single_output_is_returned_plain_in_both_formats():
    scores = {"scores": np.array([[1.5], [2.0]], dtype=np.float64)}
    assert format_predict_response(scores, "row") == {"predictions": [[1.5], [2.0]]}
    assert format_predict_response(scores, "columnar") == {"outputs": [[1.5], [2.0]]}


def test_columnar_response_is_keyed_by_output_name():
    outputs = format_predict_response(OUTPUTS, "columnar")["outputs"]
    assert outputs["colour_labels"] == [["", "blue"], ["", ""]]
    assert outputs["colour_scores"][1] == [0.33333334, 0.0]


def test_row_response_needs_a_shared_batch_dimension():
    with pytest.raises(ServingError, match="inconsistent batch size: 3 expecting: 2"):
        format_predict_response(
            {"a": np.zeros((2, 1), np.float32), "b": np.zeros((3, 1), np.float32)}, "row"
        )


def test_error_body_is_tf_serving_envelope():
    assert json.loads(error_body('bad "input"')) == {"error": 'bad "input"'}
