"""TF Serving's gRPC services over a `ModelStore`: Predict, GetModelMetadata, GetModelStatus.

The servicers are the generated ones from `tensorflow-serving-api`; methods kattr does not need
(Classify, Regress, MultiInference, HandleReloadConfigRequest) answer UNIMPLEMENTED.

Example:
    >>> server = grpc.server(ThreadPoolExecutor(8))
    >>> add_services(server, store)
    >>> server.add_insecure_port("127.0.0.1:8500")
    8500
"""

from __future__ import annotations

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from kattr.server.errors import ServingError, invalid_argument
from kattr.server.model_store import ModelStore
from kattr.server.protos import DEFAULT_SIGNATURE, metadata_response, status_response

__all__ = ["ModelService", "PredictionService", "add_services"]

_SIGNATURE_DEF_FIELD = "signature_def"


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService`: Predict and GetModelMetadata.

    Args:
        store: the versions being served.
    """

    def __init__(self, store: ModelStore):
        self.store = store

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):
        try:
            servable = self.store.servable_for_spec(request.model_spec)
            outputs = servable.run_request(request)
        except ServingError as error:
            context.abort(error.code, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = (
            request.model_spec.signature_name or DEFAULT_SIGNATURE
        )
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        return response

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ):
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            if not request.metadata_field:
                raise invalid_argument(
                    "GetModelMetadataRequest must specify at least one metadata_field"
                )
            for field in request.metadata_field:
                if field != _SIGNATURE_DEF_FIELD:
                    raise invalid_argument(f"Metadata field {field} is not supported")
            servable = self.store.servable_for_spec(request.model_spec)
        except ServingError as error:
            context.abort(error.code, error.message)
        return metadata_response(servable.name, servable.version, servable.signature_defs)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService`: GetModelStatus.

    Args:
        store: the versions being served.
    """

    def __init__(self, store: ModelStore):
        self.store = store

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ):
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            statuses = self.store.statuses(spec.name, version, spec.version_label or None)
        except ServingError as error:
            context.abort(error.code, error.message)
        return status_response(statuses)


def add_services(server: grpc.Server, store: ModelStore) -> None:
    """Registers the prediction and model services for `store` on `server`."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(store), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(store), server)
