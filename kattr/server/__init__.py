"""`kattr-serve`: a local stand-in for TF Serving's REST and gRPC APIs, for development and tests.

Production uses TF Serving (see `serving/`); this package answers the same requests the same way
for what kattr needs: predict, model status and metadata, version hot-swap and warmup, and TF
Serving's handling of faults: failed loads retried, requests beyond a limit refused, accepted
requests drained on stop.

Example:
    >>> from kattr.server import ServerOptions, serve
    >>> handle = serve("exports/shirts", ServerOptions(rest_port=0, grpc_port=0))
    >>> handle.rest_url
    'http://127.0.0.1:40211'
    >>> handle.stop()
"""

from kattr.server.app import ServerHandle, ServerOptions, serve
from kattr.server.errors import ServingError
from kattr.server.model_store import ModelStore
from kattr.server.servable import Servable
from kattr.tf_serving_requests import (
    WARMUP_PATH,
    predict_request,
    read_warmup_requests,
    write_warmup_requests,
)

__all__ = [
    "WARMUP_PATH",
    "ModelStore",
    "Servable",
    "ServerHandle",
    "ServerOptions",
    "ServingError",
    "predict_request",
    "read_warmup_requests",
    "serve",
    "write_warmup_requests",
]
