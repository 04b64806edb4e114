"""How a batch of encoded images reaches the model: TF Serving REST, gRPC, or in-process.

Every transport has `predict(images) -> {output name: array}` and raises `ServingError` with
the server's status code and message, so the client treats all three the same way.

Example:
    >>> transport = GrpcTransport("127.0.0.1:8500", "shirts")
    >>> sorted(transport.predict([jpeg_bytes]))[:2]
    ['colour_labels', 'colour_scores']
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from kattr.client.model_files import resolve_version_dir
from kattr.server.errors import ServingError, code_for_http_status
from kattr.server.protos import predict_request
from kattr.serving_contract import DEFAULT_SIGNATURE
from kattr.serving_contract import IMAGE_BYTES_INPUT as IMAGE_INPUT

__all__ = ["IMAGE_INPUT", "GrpcTransport", "InProcessTransport", "RestTransport"]



class RestTransport:
    """TF Serving's REST predict API, columnar format (``{"inputs": {"image_bytes": [...]}}``).

    Args:
        url: server root, e.g. ``http://127.0.0.1:8501``.
        model_name: the served model's name.
        signature_name: the signature to run.
        version: a specific version; None asks for the latest.
        timeout: seconds to wait for one response.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        signature_name: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        timeout: float = 30.0,
    ):
        version_path = "" if version is None else f"/versions/{version}"
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model_name}{version_path}:predict"
        self.signature_name = signature_name
        self.timeout = timeout

    def predict(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        encoded = [{"b64": base64.b64encode(image).decode("ascii")} for image in images]
        body = {"signature_name": self.signature_name, "inputs": {IMAGE_INPUT: encoded}}
        request = urllib.request.Request(
            self.endpoint,
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                document = json.load(response)
        except urllib.error.HTTPError as error:
            raise ServingError(code_for_http_status(error.code), _error_message(error)) from None
        except TimeoutError:
            raise ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"{self.endpoint}: no response in {self.timeout} s",
            ) from None
        except (urllib.error.URLError, ConnectionError) as error:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{self.endpoint}: {error}") from None
        outputs = document.get("outputs")
        if not isinstance(outputs, dict):
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                f"{self.endpoint}: expected named outputs. Received: {str(document)[:200]}",
            )
        return {name: np.asarray(value) for name, value in outputs.items()}

    def close(self) -> None:
        """Nothing to release: every request opens its own connection."""


def _error_message(error: urllib.error.HTTPError) -> str:
    body = error.read()
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", errors="replace") or str(error)


class GrpcTransport:
    """TF Serving's `PredictionService/Predict`.

    Args:
        target: ``host:port`` of the gRPC server.
        model_name: the served model's name.
        signature_name: the signature to run.
        version: a specific version; None asks for the latest.
        timeout: seconds to wait for one response (the call's deadline).
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        signature_name: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        timeout: float = 30.0,
    ):
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            target,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        request = predict_request(
            {IMAGE_INPUT: list(images)}, self.model_name, self.signature_name, self.version
        )
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.code(), error.details() or str(error)) from None
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def close(self) -> None:
        self.channel.close()


class InProcessTransport:
    """The exported SavedModel loaded in this process: no server at all.

    Args:
        model_dir: a SavedModel version directory, or a base path (its highest version).
        signature_name: the signature to run.
    """

    def __init__(self, model_dir: str | os.PathLike, signature_name: str = DEFAULT_SIGNATURE):
        self.export_dir = resolve_version_dir(model_dir)
        self._loaded = tf.saved_model.load(str(self.export_dir))
        if signature_name not in self._loaded.signatures:
            raise ValueError(
                f"{self.export_dir}: no signature {signature_name!r}. "
                f"Available: {sorted(self._loaded.signatures)}"
            )
        self.function = self._loaded.signatures[signature_name]

    def predict(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        try:
            outputs = self.function(**{IMAGE_INPUT: tf.constant(list(images), dtype=tf.string)})
        except tf.errors.OpError as error:
            raise ServingError.from_tf_error(error) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def close(self) -> None:
        """The model stays loaded until the transport is dropped."""
