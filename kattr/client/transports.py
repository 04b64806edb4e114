"""How a batch of encoded images reaches the model: TF Serving REST, gRPC, or in-process.

Every transport has `predict(images) -> {output name: array}` and raises `ServingError` with
the server's status code and message, so the client treats all three the same way.

The server transports also have `model_metadata()` (the served version and its signatures, a
`ServedModel`), `pin(version)` (send every later request to that version) and
`served_versions()`; `PredictClient` uses them so one version answers a whole run. The gRPC
transport checks that each answer comes from the pinned version (`ModelVersionError`).

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
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from kattr.client.model_files import resolve_version_dir
from kattr.client.served_model import SIGNATURE_DEF_FIELD, ModelVersionError, ServedModel
from kattr.server.errors import ServingError, code_for_http_status
from kattr.serving_contract import DEFAULT_SIGNATURE
from kattr.serving_contract import IMAGE_BYTES_INPUT as IMAGE_INPUT
from kattr.tf_serving_requests import predict_request

__all__ = ["IMAGE_INPUT", "GrpcTransport", "InProcessTransport", "RestTransport"]

_AVAILABLE = "AVAILABLE"


class RestTransport:
    """TF Serving's REST predict API, columnar format (``{"inputs": {"image_bytes": [...]}}``).

    Args:
        url: server root, e.g. ``http://127.0.0.1:8501``.
        model_name: the served model's name.
        signature_name: the signature to run.
        version: a specific version; None asks for the latest (until `pin`).
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
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.timeout = timeout

    @property
    def model_url(self) -> str:
        """``<url>/v1/models/<name>``, with ``/versions/<N>`` once a version is set."""
        version_path = "" if self.version is None else f"/versions/{self.version}"
        return f"{self.url}/v1/models/{self.model_name}{version_path}"

    @property
    def endpoint(self) -> str:
        return f"{self.model_url}:predict"

    def pin(self, version: int) -> None:
        """Sends every later request to `version` (``/versions/<N>:predict``)."""
        self.version = int(version)

    def predict(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        encoded = [{"b64": base64.b64encode(image).decode("ascii")} for image in images]
        body = {"signature_name": self.signature_name, "inputs": {IMAGE_INPUT: encoded}}
        endpoint = self.endpoint
        document = self._request(endpoint, json.dumps(body).encode("utf-8"))
        outputs = document.get("outputs") if isinstance(document, dict) else None
        if not isinstance(outputs, dict):
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                f"{endpoint}: expected named outputs. Received: {str(document)[:200]}",
            )
        return {name: np.asarray(value) for name, value in outputs.items()}

    def model_metadata(self) -> ServedModel:
        """The served version (the pinned one, else the latest) and its signature defs."""
        url = f"{self.model_url}/metadata"
        document = self._request(url)
        if not isinstance(document, dict):
            raise ServingError(
                grpc.StatusCode.INTERNAL, f"{url}: expected a JSON object. Received: {document}"
            )
        return ServedModel.from_metadata_json(document)

    def served_versions(self) -> list[int]:
        """The model's AVAILABLE versions, newest first (TF Serving's model status)."""
        url = f"{self.url}/v1/models/{self.model_name}"
        document = self._request(url)
        statuses = document.get("model_version_status", []) if isinstance(document, dict) else []
        return sorted(
            (int(status["version"]) for status in statuses if status.get("state") == _AVAILABLE),
            reverse=True,
        )

    def _request(self, url: str, body: bytes | None = None):
        """The JSON answer of a GET (no body) or POST; errors as `ServingError`."""
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json"} if body is not None else {},
            method="GET" if body is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise ServingError(code_for_http_status(error.code), _error_message(error)) from None
        except TimeoutError:
            raise ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"{url}: no response in {self.timeout} s"
            ) from None
        except (urllib.error.URLError, ConnectionError) as error:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{url}: {error}") from None
        except ValueError as error:  # not JSON
            raise ServingError(
                grpc.StatusCode.INTERNAL, f"{url}: the answer is not JSON ({error})"
            ) from None

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
        version: a specific version; None asks for the latest (until `pin`). Answers from
            another version raise `ModelVersionError`.
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
        self.target = target
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.timeout = timeout
        self.answered_version: int | None = None  # the version of the last answer
        self.channel = grpc.insecure_channel(
            target,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_stub = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def pin(self, version: int) -> None:
        """Sends every later request to `version` and accepts answers from it only."""
        self.version = int(version)

    def predict(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        request = predict_request(
            {IMAGE_INPUT: list(images)}, self.model_name, self.signature_name, self.version
        )
        response = self._call(self.stub.Predict, request)
        if response.model_spec.HasField("version"):
            answered = int(response.model_spec.version.value)
            self.answered_version = answered
            if self.version is not None and answered != self.version:
                raise ModelVersionError(
                    f"model {self.model_name!r}: version {answered} answered a request for "
                    f"version {self.version}; this run was pinned to version {self.version} so "
                    "that one version answers every row. Rerun it",
                    pinned=self.version, answered=answered,
                )
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def model_metadata(self) -> ServedModel:
        """The served version (the pinned one, else the latest) and its signature defs."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = self.model_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        request.metadata_field.append(SIGNATURE_DEF_FIELD)
        return ServedModel.from_metadata_response(self._call(self.stub.GetModelMetadata, request))

    def served_versions(self) -> list[int]:
        """The model's AVAILABLE versions, newest first (`ModelService/GetModelStatus`)."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        response = self._call(self.model_stub.GetModelStatus, request)
        available = get_model_status_pb2.ModelVersionStatus.State.Value(_AVAILABLE)
        return sorted(
            (int(status.version) for status in response.model_version_status
             if status.state == available),
            reverse=True,
        )

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.code(), error.details() or str(error)) from None

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
