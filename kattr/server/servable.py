"""One loaded SavedModel version and the checks TF Serving makes before running a signature.

Example:
    >>> servable = Servable.load("shirts", 3, "exports/shirts/3")
    >>> outputs = servable.predict({"image_bytes": np.array([jpeg_bytes], dtype=object)})
    >>> sorted(outputs)[:2]
    ['colour_labels', 'colour_scores']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import predict_pb2

from kattr.server.errors import ServingError, invalid_argument
from kattr.server.protos import DEFAULT_SIGNATURE

__all__ = ["Servable", "read_signature_defs"]

_SERVE_TAG = "serve"


def read_signature_defs(export_dir: str | os.PathLike) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The signature defs of the `serve` meta graph in `export_dir/saved_model.pb`."""
    path = Path(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if _SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path}: no meta graph tagged {_SERVE_TAG!r}")


def _as_array(value) -> np.ndarray:
    """An array of `value`; bytes stay objects (a fixed-width bytes array drops trailing NULs)."""
    if isinstance(value, np.ndarray):
        return value
    array = np.asarray(value)
    return np.asarray(value, dtype=object) if array.dtype.kind in "SU" else array


def _dtype_of(array: np.ndarray) -> tf.DType:
    if array.dtype == object or array.dtype.kind in "SU":
        return tf.string
    return tf.as_dtype(array.dtype)


def _dtype_name(dtype: tf.DType) -> str:
    return "string" if dtype == tf.string else dtype.name


def _check_shape(name: str, array: np.ndarray, info: meta_graph_pb2.TensorInfo) -> None:
    if info.tensor_shape.unknown_rank:
        return
    expected = [dim.size for dim in info.tensor_shape.dim]
    if len(expected) != array.ndim or any(
        size not in (-1, actual) for size, actual in zip(expected, array.shape, strict=True)
    ):
        wanted = "[" + ",".join("?" if size == -1 else str(size) for size in expected) + "]"
        raise invalid_argument(
            f"input {name} has shape {list(array.shape)}, but the signature expects {wanted}"
        )


def _check_input_names(sent: set[str], signature: meta_graph_pb2.SignatureDef) -> None:
    """TF Serving's checks and messages (predict_util.cc, saved_model/util.cc)."""
    required = set(signature.inputs)
    if len(sent) != len(required):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(required)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(required))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - required))}}}. "
            f"Missing but required: {{{','.join(sorted(required - sent))}}}."
        )
    for alias, info in signature.inputs.items():
        if alias not in sent:
            raise invalid_argument(
                f"Signature input alias: {alias}(feed name: {info.name}) not found in request "
                f"and no default value provided. Inputs expected to be in the request "
                f"{{{','.join(sorted(sent))}}}, or default input alias set: "
            )


class Servable:
    """A loaded model version: signatures ready to run, with TF Serving's request checks.

    Args:
        name: the model name (the basename of the base path).
        version: the version number (the directory name).
        path: the SavedModel directory.
        functions: signature name -> concrete function, from `tf.saved_model.load`.
        signature_defs: signature name -> `SignatureDef` proto, from `saved_model.pb`.
        owner: the loaded SavedModel object; kept so the variables the functions capture live.
    """

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        functions: Mapping[str, tf.types.experimental.ConcreteFunction],
        signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
        owner: object = None,
    ):
        self.name = name
        self.version = version
        self.path = path
        self.functions = dict(functions)
        self.signature_defs = dict(signature_defs)
        self._owner = owner

    @classmethod
    def load(cls, name: str, version: int, path: str | os.PathLike) -> Servable:
        """Loads the SavedModel at `path` (tag `serve`)."""
        path = Path(path)
        loaded = tf.saved_model.load(str(path), tags=[_SERVE_TAG])
        return cls(name, version, path, loaded.signatures, read_signature_defs(path), loaded)

    def input_dtypes(self, signature_name: str = "") -> dict[str, tf.DType]:
        """Input name -> dtype of a signature ("" is `serving_default`), for the REST decoder."""
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        return {
            name: tf.as_dtype(info.dtype) for name, info in self.signature_defs[key].inputs.items()
        }

    def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        signature_name: str = "",
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        """Runs a signature on `inputs`; returns output name -> array.

        Raises:
            ServingError: FAILED_PRECONDITION for an unknown signature, INVALID_ARGUMENT for
                wrong input names, dtypes or shapes, unknown outputs, or data the model rejects
                (bytes that are not an image).
        """
        key = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(key)
        function = self.functions.get(key)
        if signature is None or function is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.'
            )
        _check_input_names(set(inputs), signature)
        tensors = {}
        for name, info in signature.inputs.items():
            array = _as_array(inputs[name])
            expected = tf.as_dtype(info.dtype)
            if _dtype_of(array) != expected:
                raise invalid_argument(
                    f"Expects arg[{name}] to be {_dtype_name(expected)} but "
                    f"{_dtype_name(_dtype_of(array))} is provided"
                )
            _check_shape(name, array, info)
            tensors[name] = tf.constant(array, dtype=expected)
        for alias in output_filter:
            if alias not in signature.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be "
                    f"in the set {{{','.join(sorted(signature.outputs))}}}."
                )
        if len(set(output_filter)) != len(output_filter):
            raise invalid_argument(f"duplicate output tensor alias: {list(output_filter)}")
        try:
            results = function(**tensors)
        except tf.errors.OpError as error:
            raise ServingError.from_tf_error(error) from None
        names = list(output_filter) or list(results)
        return {name: results[name].numpy() for name in names}

    def run_request(self, request: predict_pb2.PredictRequest) -> dict[str, np.ndarray]:
        """`predict` for a gRPC `PredictRequest` (its tensors, signature and output filter)."""
        try:
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        except (TypeError, ValueError) as error:
            raise invalid_argument(f"Cannot convert input tensor: {error}") from None
        return self.predict(inputs, request.model_spec.signature_name, request.output_filter)

    def warmup(self, requests: Iterable[predict_pb2.PredictRequest]) -> int:
        """Replays warmup requests; returns how many ran. A failing request fails the load."""
        count = 0
        for index, request in enumerate(requests):
            try:
                self.run_request(request)
            except ServingError as error:
                raise ServingError(
                    error.code, f"warmup request {index} failed: {error.message}"
                ) from None
            count += 1
        return count
