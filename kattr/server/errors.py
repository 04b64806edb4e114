"""Request errors with TF Serving's status codes, shared by the REST and gRPC front ends.

A `ServingError` carries a `grpc.StatusCode`; the REST server turns it into the HTTP status that
TF Serving uses for the same code (InvalidArgument 400, NotFound 404, ...).

Example:
    >>> error = ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(x)")
    >>> error.http_status
    404
"""

from __future__ import annotations

import re

import grpc
import tensorflow as tf

__all__ = ["HTTP_STATUS", "ServingError", "code_for_http_status", "invalid_argument", "not_found"]

# model_servers/http_server.cc: ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# TensorFlow's error codes are the canonical gRPC codes, number for number.
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# The reverse of HTTP_STATUS for a REST client; where several codes share a status, the usual one.
_CODE_BY_HTTP_STATUS = {status: code for code, status in reversed(HTTP_STATUS.items())} | {
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
}

# Eager execution prefixes runtime errors with where the failing node was defined.
_GRAPH_ERROR_PREAMBLE = re.compile(
    r"^Graph execution error:\s*(?:Detected at node .*?\n<stack traces unavailable>\n)?", re.S
)


class ServingError(Exception):
    """A failed request: a gRPC status code and TF Serving's message for it.

    Args:
        code: the status code, e.g. `grpc.StatusCode.INVALID_ARGUMENT`.
        message: what went wrong, in the words TF Serving uses where it has them.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    @classmethod
    def from_tf_error(cls, error: tf.errors.OpError) -> ServingError:
        """Keeps the code of a TensorFlow runtime error (bad image bytes are INVALID_ARGUMENT)."""
        message = _GRAPH_ERROR_PREAMBLE.sub("", error.message, count=1)
        return cls(_CODE_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN), message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def code_for_http_status(status: int) -> grpc.StatusCode:
    """The status code behind a TF Serving HTTP status (UNKNOWN for one it never sends)."""
    return _CODE_BY_HTTP_STATUS.get(status, grpc.StatusCode.UNKNOWN)


def invalid_argument(message: str) -> ServingError:
    """An INVALID_ARGUMENT error (REST 400)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """A NOT_FOUND error (REST 404)."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
