"""TF Serving's REST API (`/v1/models/...`) over a `ModelStore`, on the stdlib HTTP server.

`RestApi` maps (method, path, body) to (status, JSON body) and knows nothing about sockets;
`RestServer` is an HTTP/1.1 server with a bounded pool of worker threads, a bound on open
connections (503 beyond it), a request size limit, and a draining stop.

Example:
    >>> api = RestApi(store)
    >>> status, body = api.handle("GET", "/v1/models/shirts", b"")
    >>> status, json.loads(body)["model_version_status"][0]["state"]
    (200, 'AVAILABLE')
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import grpc

from kattr.server.errors import ServingError, invalid_argument, not_found
from kattr.server.model_store import ModelStore
from kattr.server.protos import message_to_json, metadata_json, status_response
from kattr.server.servable import Servable
from kattr.server.tensor_json import error_body, format_predict_response, parse_predict_request

__all__ = ["RestApi", "RestServer"]

logger = logging.getLogger(__name__)

_VERSION = r"(?:/versions/(\d+)|/labels/([a-zA-Z0-9_]+))?"
_PREDICT_PATH = re.compile(
    rf"/v1/models/([^/:]+){_VERSION}:(classify|regress|predict)", re.IGNORECASE
)
_MODEL_PATH = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION}(/metadata)?", re.IGNORECASE)
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_INT64_MAX = 2**63 - 1
_LINGER_SECONDS = 2.0  # how long a refused client may take to finish sending and close
_MAX_REFUSING = 128  # refused connections waiting for an answer; more are closed at once


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if int(text) > _INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {text} to numeric.")
    return int(text)


def _json_bytes(document: dict) -> bytes:
    return json.dumps(document).encode("utf-8")


class RestApi:
    """Answers TF Serving REST requests for the model of `store`.

    Args:
        store: the versions being served.
    """

    def __init__(self, store: ModelStore):
        self.store = store

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """Returns the HTTP status and JSON body for one request."""
        path = urlsplit(path).path
        try:
            if not _API_PATH.fullmatch(path):
                raise not_found(f"Not found: {method} {path}")
            if method == "POST" and (match := _PREDICT_PATH.fullmatch(path)):
                name, version, label, verb = match.groups()
                return 200, self._predict(name, _version(version), label, verb.lower(), body)
            if method == "GET" and (match := _MODEL_PATH.fullmatch(path)):
                name, version, label, metadata = match.groups()
                if not name:
                    raise invalid_argument("Missing model name in request.")
                if metadata:
                    return 200, self._metadata(name, _version(version), label)
                return 200, self._status(name, _version(version), label)
            raise invalid_argument(f"Malformed request: {method} {path}")
        except ServingError as error:
            return error.http_status, error_body(error.message)
        except Exception as error:  # a bug must answer 500 like TF Serving, not drop the socket
            logger.exception("internal error answering %s %s", method, path)
            return 500, error_body(f"Internal error: {error}")

    def _predict(
        self, name: str, version: int | None, label: str | None, verb: str, body: bytes
    ) -> bytes:
        if verb != "predict":
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"kattr-serve answers :predict only; :{verb} needs TF Serving",
            )
        resolved: list[Servable] = []

        def input_dtypes(signature_name: str):
            # Resolved once, so a version swap mid-request cannot mix two versions.
            resolved.append(self.store.servable(name, version, label))
            return resolved[0].input_dtypes(signature_name)

        request = parse_predict_request(body, input_dtypes)
        outputs = resolved[0].predict(request.inputs, request.signature_name)
        return _json_bytes(format_predict_response(outputs, request.format))

    def _status(self, name: str, version: int | None, label: str | None) -> bytes:
        statuses = self.store.statuses(name, version, label)
        return _json_bytes(message_to_json(status_response(statuses)))

    def _metadata(self, name: str, version: int | None, label: str | None) -> bytes:
        servable = self.store.servable(name, version, label)
        return _json_bytes(
            metadata_json(servable.name, servable.version, servable.signature_defs)
        )


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # seconds an idle keep-alive connection may hold a worker
    server: RestServer

    def handle(self) -> None:
        # BaseHTTPRequestHandler.handle, except that a connection waiting for its next request
        # is idle: a draining server closes it instead of waiting for it.
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection and self.server.keep_alive(self.connection):
            self.handle_one_request()

    def parse_request(self) -> bool:
        self.server.busy(self.connection)  # a request line arrived: no longer idle
        return super().parse_request()

    def _reply(self, status: int, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close or self.server.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        """The request body, or None after replying with an error (too large, chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._reply(411, error_body("Send the body with a Content-Length header"), close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reply(400, error_body("Content-Length is not a number"), close=True)
            return None
        if length > self.server.max_request_bytes:
            message = (
                f"Request body of {length} bytes exceeds the limit of "
                f"{self.server.max_request_bytes} bytes (--max-request-bytes)"
            )
            self._reply(413, error_body(message), close=True)
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is not None:
            self._reply(*self.server.api.handle(self.command, self.path, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


def _cut(connection: socket.socket) -> None:
    """Ends both directions of a connection another thread is using; its reads and writes fail."""
    with contextlib.suppress(OSError):  # already closed
        connection.shutdown(socket.SHUT_RDWR)


class RestServer(http.server.HTTPServer):
    """An HTTP server for `RestApi`: bounded threads and connections, and a draining stop.

    `workers` threads answer the connections; up to `max_connections` connections may be open
    at once (being answered, waiting for a worker, or kept alive between requests), and the
    listen backlog holds as many. A connection beyond the limit is answered 503 by one of two
    refusing threads, without its request being parsed (closed at once if `_MAX_REFUSING` are
    waiting for those). `stop` refuses new connections and lets the open ones finish.

    Args:
        address: (host, port); port 0 picks a free port (see `server_port`).
        api: what answers the requests.
        workers: threads handling connections; further connections wait for a free one.
        max_request_bytes: larger bodies are refused with 413 without being read.
        max_connections: open connections beyond this are refused with 503.

    Example:
        >>> server = RestServer(("127.0.0.1", 0), RestApi(store), 8, 2**26, 64)
        >>> threading.Thread(target=server.serve_forever).start()
        >>> server.stop(drain_seconds=10)
    """

    def __init__(
        self,
        address: tuple[str, int],
        api: RestApi,
        workers: int,
        max_request_bytes: int,
        max_connections: int,
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.request_queue_size = max_connections  # the listen backlog, read by server_activate
        super().__init__(address, _RequestHandler)
        self.api = api
        self.max_request_bytes = max_request_bytes
        self.max_connections = max_connections
        self.draining = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="kattr-rest")
        self._refusals = ThreadPoolExecutor(2, thread_name_prefix="kattr-rest-refuse")
        self._changed = threading.Condition()  # guards _open, _idle, _refusing and draining
        self._open: set[socket.socket] = set()
        self._idle: set[socket.socket] = set()
        self._refusing = 0

    @property
    def open_connections(self) -> int:
        """Connections being answered, waiting for a worker, or kept alive."""
        with self._changed:
            return len(self._open)

    def process_request(self, request, client_address) -> None:
        with self._changed:
            admitted = len(self._open) < self.max_connections
            if admitted:
                self._open.add(request)
            refused = not admitted and self._refusing < _MAX_REFUSING
            if refused:
                self._refusing += 1
        if admitted:
            self._pool.submit(self._process, request, client_address)
        elif refused:
            self._refusals.submit(self._refuse, request)
        else:  # too many even to refuse with an answer
            self.shutdown_request(request)

    def _refuse(self, request: socket.socket) -> None:
        """Answers 503 without reading the request, then closes after the client does.

        Until the client closes (or `_LINGER_SECONDS` pass) what it still sends is read and
        dropped: closing with unread data would reset the connection, and a client still
        sending its body would get the reset instead of the answer.
        """
        body = error_body(
            f"kattr-serve has {self.max_connections} requests in flight, its limit "
            "(--max-concurrent-requests); retry later"
        )
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        deadline = time.monotonic() + _LINGER_SECONDS
        try:
            request.settimeout(_LINGER_SECONDS)
            request.sendall(head.encode("ascii") + body)
            request.shutdown(socket.SHUT_WR)
            while time.monotonic() < deadline and request.recv(65536):
                pass
        except OSError:
            pass  # the client is gone, or too slow to wait for
        finally:
            request.close()
            with self._changed:
                self._refusing -= 1

    def _process(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # the base class's policy: report it and drop the connection
            self.handle_error(request, client_address)
        finally:
            with self._changed:
                self._open.discard(request)
                self._idle.discard(request)
                self._changed.notify_all()
            self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        """Logs a connection that failed; one closed under it (client gone, cut off) quietly."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("connection from %s closed while answering it", client_address)
        else:
            logger.exception("error answering the connection from %s", client_address)

    def keep_alive(self, connection: socket.socket) -> bool:
        """Marks a connection idle until its next request; False when the server is draining."""
        with self._changed:
            if not self.draining:
                self._idle.add(connection)
            return not self.draining

    def busy(self, connection: socket.socket) -> None:
        """Marks a connection as answering a request."""
        with self._changed:
            self._idle.discard(connection)

    def stop(self, drain_seconds: float) -> None:
        """Stops accepting, then gives open connections `drain_seconds` to finish.

        New connections are refused from the start; idle kept-alive connections are closed;
        requests being answered or waiting for a worker are answered; connections still open
        at the deadline are cut off. Call it while `serve_forever` runs in another thread.
        """
        self.shutdown()
        self.server_close()
        with self._changed:
            self.draining = True
            for connection in self._idle:
                _cut(connection)
            if not self._changed.wait_for(lambda: not self._open, drain_seconds):
                logger.warning(
                    "cut off %d REST connections still open after %.1f s of draining",
                    len(self._open), drain_seconds,
                )
                for connection in self._open:
                    _cut(connection)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False)  # accepted connections still get answered
        self._refusals.shutdown(wait=False)
