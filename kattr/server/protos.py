"""TF Serving protos that kattr-serve builds: status and metadata responses.

The REST server prints the status and metadata protos with TF Serving's JSON options, so both
protocols answer with the same content. Predict requests are built by
`kattr.tf_serving_requests.predict_request` (shared with the exporter and the client).

Example:
    >>> status_response("shirts", [VersionStatus(3, "AVAILABLE")]).model_version_status[0].state
    30
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
)

from kattr.serving_contract import DEFAULT_SIGNATURE

__all__ = [
    "DEFAULT_SIGNATURE",
    "VersionStatus",
    "message_to_json",
    "metadata_json",
    "metadata_response",
    "status_response",
]



@dataclass(frozen=True)
class VersionStatus:
    """The state of one model version, as `GetModelStatus` reports it.

    Attributes:
        version: the version number (the directory name).
        state: START, LOADING, AVAILABLE, UNLOADING or END.
        error_code: "OK", or the canonical code name of a failed load (e.g. "NOT_FOUND").
        error_message: why the load failed; "" when it did not.
    """

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


def status_response(
    statuses: Iterable[VersionStatus],
) -> get_model_status_pb2.GetModelStatusResponse:
    """A `GetModelStatusResponse` listing `statuses` in the given order."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = status.error_code
        entry.status.error_message = status.error_message
    return response


def metadata_response(
    model_name: str, version: int, signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """A `GetModelMetadataResponse` with the `signature_def` field, as TF Serving packs it."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = model_name
    response.model_spec.version.value = version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
    response.metadata["signature_def"].Pack(signature_map)
    return response


def metadata_json(
    model_name: str, version: int, signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
) -> dict:
    """The REST metadata body: as `metadata_response`, with the signature map printed in place
    (TF Serving writes it without the `@type` of the packed `Any`)."""
    response = metadata_response(model_name, version, signature_defs)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return {
        "model_spec": message_to_json(response.model_spec),
        "metadata": {"signature_def": message_to_json(signature_map)},
    }


def message_to_json(message: Message) -> dict:
    """TF Serving's JSON form of a proto: proto field names, default values printed."""
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
