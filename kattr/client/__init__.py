"""Clients of the exported model: TF Serving or kattr-serve over REST or gRPC, or in-process.

Example:
    >>> from kattr.client import PredictClient, collect_images
    >>> with PredictClient.from_model_dir("exports/shirts") as client:
    ...     records = list(client.predict_files(collect_images(["photos/"])))
"""

from kattr.client.decode import decode_outputs
from kattr.client.inputs import collect_images
from kattr.client.model_files import read_value_names, resolve_version_dir
from kattr.client.predict_client import PredictClient
from kattr.client.served_model import ModelVersionError, ServedModel, check_value_names
from kattr.client.transports import GrpcTransport, InProcessTransport, RestTransport
from kattr.client.writers import PredictionWriter, format_predictions, write_predictions

__all__ = [
    "GrpcTransport",
    "InProcessTransport",
    "ModelVersionError",
    "PredictClient",
    "PredictionWriter",
    "RestTransport",
    "ServedModel",
    "check_value_names",
    "collect_images",
    "decode_outputs",
    "format_predictions",
    "read_value_names",
    "resolve_version_dir",
    "write_predictions",
]
