"""TF Serving's JSON encoding of predict requests and responses (`util/json_tensor.cc`).

Requests come in two formats, and the response mirrors the request:
- row: ``{"instances": [...]}``, one element per example (a value for a single input, or an
  object ``{input: value}``); the response is ``{"predictions": [...]}`` (objects keyed by output
  name when there are several outputs);
- columnar: ``{"inputs": value-or-object}``; the response is ``{"outputs": value-or-object}``.

Binary strings travel as ``{"b64": "<standard base64>"}``; string outputs whose names end in
``_bytes`` are returned that way. Error messages are TF Serving's, so clients can match them.

Example:
    >>> request = parse_predict_request(b'{"instances": [{"b64": "aGk="}]}',
    ...                                 lambda signature: {"image_bytes": tf.string})
    >>> request.inputs["image_bytes"]
    array([b'hi'], dtype=object)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from kattr.server.errors import ServingError, invalid_argument

__all__ = [
    "JsonPredictRequest",
    "error_body",
    "format_predict_response",
    "parse_predict_request",
]

RequestFormat = Literal["row", "columnar"]

_BASE64_KEY = "b64"
# The largest integer each JSON-convertible float type holds exactly (2**mantissa_bits - 1).
_MAX_EXACT_INTEGER = {tf.float32: 2**24 - 1, tf.float64: 2**53 - 1}
_BYTES_SUFFIX = "_bytes"
_MAX_VALUE_CHARS = 256


@dataclass
class JsonPredictRequest:
    """A decoded predict request.

    Attributes:
        signature_name: the requested signature; "" means `serving_default`.
        inputs: input name -> array typed as the signature declares (strings as bytes objects).
        format: "row" (`instances`) or "columnar" (`inputs`); the response uses the same.
    """

    signature_name: str
    inputs: dict[str, np.ndarray]
    format: RequestFormat


def _dump(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _dtype_name(dtype: tf.DType) -> str:
    return types_pb2.DataType.Name(dtype.as_datatype_enum).removeprefix("DT_").lower()


def _type_error(value: Any, dtype: tf.DType) -> ServingError:
    return invalid_argument(
        f"JSON Value: {_dump(value)} Type: {_json_type(value)} is not of expected type: "
        f"{_dtype_name(dtype)}"
    )


def _is_base64_object(value: Any) -> bool:
    return (
        isinstance(value, dict) and len(value) == 1 and isinstance(value.get(_BASE64_KEY), str)
    )


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_base64_object(value)


def _decode_base64(value: Any) -> bytes:
    if not _is_base64_object(value):
        raise invalid_argument(
            f"JSON Value: {_dump(value)} not formatted correctly for base64 data"
        )
    text = value[_BASE64_KEY]
    try:
        # Standard alphabet only (URL-safe '-' and '_' fail, as in TF Serving); padding optional.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _is_lossless(value: int | float, dtype: tf.DType) -> bool:
    if isinstance(value, float) and not np.isfinite(value):
        return True
    if isinstance(value, int):
        return abs(value) <= _MAX_EXACT_INTEGER[dtype]
    return dtype.min <= value <= dtype.max


def _scalar(value: Any, dtype: tf.DType) -> Any:
    """Checks one JSON leaf against the input's dtype and returns the Python value to store."""
    if isinstance(value, dict):
        if dtype == tf.string:
            return _decode_base64(value)
        raise _type_error(value, dtype)
    if dtype == tf.string:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype in _MAX_EXACT_INTEGER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(value, dtype)
        if not _is_lossless(value, dtype):
            raise invalid_argument(
                f"Cannot convert JSON value: {_dump(value)} to {_dtype_name(dtype)} "
                "without loss of precision."
            )
        return value
    if dtype.is_integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, dtype)
        if not dtype.min <= value <= dtype.max:
            raise _type_error(value, dtype)
        return value
    raise ServingError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"Conversion of JSON Value: {_dump(value)} to type: {_dtype_name(dtype)}",
    )


def _dense_shape(value: Any) -> list[int]:
    """The shape implied by the first element at every nesting level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: tf.DType, flat: list) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {_dump(value)} found at incorrect level: {level + 1} in the JSON "
                f"DOM. Expected at level: {rank}"
            )
        flat.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, flat)


def _tensor_from_json(value: Any, dtype: tf.DType) -> np.ndarray:
    """A dense array from nested JSON lists; every leaf is checked against `dtype`."""
    shape = _dense_shape(value)
    flat: list = []
    _fill(value, 0, shape, dtype, flat)
    if dtype == tf.string:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        array = np.array(flat, dtype=dtype.as_numpy_dtype)
    return array.reshape(shape)


def _shape_string(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def _add_instance_item(
    value: Any, name: str, dtypes: Mapping[str, tf.DType], rows: dict[str, list[np.ndarray]]
) -> None:
    if name not in dtypes:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    tensor = _tensor_from_json(value, dtypes[name])
    previous = rows.setdefault(name, [])
    if previous:
        first = previous[0]
        if first.size != tensor.size:
            raise invalid_argument(f"Expecting tensor size: {first.size} but got: {tensor.size}")
        if first.shape != tensor.shape:
            raise invalid_argument(
                f"Expecting shape {_shape_string(first.shape)} but got: "
                f"{_shape_string(tensor.shape)}"
            )
    previous.append(tensor)


def _inputs_from_instances(
    instances: list, dtypes: Mapping[str, tf.DType]
) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    named = _is_named_object(instances[0])
    input_names = sorted(dtypes)
    rows: dict[str, list[np.ndarray]] = {}
    for index, element in enumerate(instances):
        if named:
            if not _is_named_object(element):
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for name, value in element.items():
                try:
                    _add_instance_item(value, name, dtypes, rows)
                except ServingError as error:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {error.code.name}: {error.message}"
                    ) from None
            if sorted(element) != input_names:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{_dump(element)} keys must be equal to: {','.join(input_names)}"
                )
        else:
            if _is_named_object(element):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                _add_instance_item(element, next(iter(dtypes)), dtypes, rows)
            except ServingError as error:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {error.code.name}: {error.message}"
                ) from None
    return {name: np.stack(tensors) for name, tensors in rows.items()}


def _inputs_from_columns(value: Any, dtypes: Mapping[str, tf.DType]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_base64_object(value):
        if len(dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name = next(iter(dtypes))
        return {name: _tensor_from_json(value, dtypes[name])}
    inputs = {}
    for name, dtype in dtypes.items():
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        inputs[name] = _tensor_from_json(value[name], dtype)
    return inputs


def _parse_json(body: bytes) -> dict:
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except (UnicodeDecodeError, RecursionError) as error:
        raise invalid_argument(f"JSON Parse error: {error}") from None
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {_dump(document)} Is not object")
    return document


def parse_predict_request(
    body: bytes, input_dtypes: Callable[[str], Mapping[str, tf.DType]]
) -> JsonPredictRequest:
    """Decodes a REST predict body into typed input arrays.

    Args:
        body: the raw request body.
        input_dtypes: signature name ("" for the default) -> input name -> dtype; it raises a
            `ServingError` for an unknown model or signature, as TF Serving does at that point.

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's message for a malformed request.
    """
    document = _parse_json(body)
    signature_name = document.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid_argument(
            f"JSON Value: {_dump(document)} not formatted correctly. 'signature_name' key must "
            "be a string value."
        )
    dtypes = input_dtypes(signature_name)
    if not dtypes:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {_dump(document)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {_dump(document)} Excepting 'instances' to be an list/array"
            )
        if not instances:
            raise invalid_argument(f"JSON Value: {_dump(document)} No values in 'instances' array")
        return JsonPredictRequest(signature_name, _inputs_from_instances(instances, dtypes), "row")
    if has_inputs:
        inputs = _inputs_from_columns(document["inputs"], dtypes)
        return JsonPredictRequest(signature_name, inputs, "columnar")
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _string_to_json(value: bytes | str, as_bytes: bool) -> Any:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if as_bytes:
        return {_BASE64_KEY: base64.b64encode(raw).decode("ascii")}
    return raw.decode("utf-8", errors="replace")


def _to_json_values(name: str, array: np.ndarray) -> Any:
    """Nested JSON values; float32 keeps its shortest decimal form (0.2, not 0.2000000029)."""
    if array.dtype == object or array.dtype.kind in "SU":
        as_bytes = name.endswith(_BYTES_SUFFIX)
        values = np.empty(array.size, dtype=object)
        values[:] = [_string_to_json(value, as_bytes) for value in array.reshape(-1)]
        return values.reshape(array.shape).tolist()
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        return array.astype(str).astype(np.float64).tolist()
    return array.tolist()


def format_predict_response(
    outputs: Mapping[str, np.ndarray], request_format: RequestFormat
) -> dict:
    """The JSON response for `outputs`, in the format of the request.

    Raises:
        ServingError: INVALID_ARGUMENT when a row-format response has outputs without a shared
            batch dimension.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    several = len(outputs) > 1
    values = {name: _to_json_values(name, np.asarray(array)) for name, array in outputs.items()}
    if request_format == "columnar":
        return {"outputs": values if several else next(iter(values.values()))}
    batch_size = None
    for name, array in outputs.items():
        if np.ndim(array) == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and len(array) != batch_size:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {len(array)} expecting: "
                f"{batch_size}"
            )
        batch_size = len(array)
    if several:
        predictions = [{name: rows[index] for name, rows in values.items()}
                       for index in range(batch_size)]
    else:
        predictions = next(iter(values.values()))
    return {"predictions": predictions}


def error_body(message: str) -> bytes:
    """The body TF Serving sends with an error status: ``{"error": "<message>"}``."""
    return json.dumps({"error": message}).encode("utf-8")
