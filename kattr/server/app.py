"""Starts `kattr-serve`: the model store, the REST server and the gRPC server, as one handle.

Stopping it drains: new connections and calls are refused, requests already accepted get up to
`drain_seconds` to finish (for gRPC, `server.stop(grace)`), then the rest are cut off.

Example:
    >>> with serve("exports/shirts", ServerOptions(rest_port=0, grpc_port=0)) as handle:
    ...     print(handle.rest_url, handle.grpc_target)
    http://127.0.0.1:40211 127.0.0.1:40212
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from kattr.server.grpc_service import add_services
from kattr.server.model_store import ModelStore
from kattr.server.rest import RestApi, RestServer

__all__ = ["ServerHandle", "ServerOptions", "serve"]

logger = logging.getLogger(__name__)


@dataclass
class ServerOptions:
    """How `kattr-serve` listens and loads.

    Args:
        host: address to bind; 127.0.0.1 keeps the server local.
        rest_port: REST port; 0 picks a free one, None disables REST.
        grpc_port: gRPC port; 0 picks a free one, None disables gRPC.
        poll_interval_seconds: how often the base path is scanned for new versions.
        max_request_bytes: largest accepted request (REST body or gRPC message).
        workers: threads per protocol; REST connections and gRPC calls beyond them wait.
        max_concurrent_requests: per protocol, the REST connections and gRPC calls in flight
            (answered or waiting for a worker); beyond it REST answers 503 and gRPC
            RESOURCE_EXHAUSTED.
        enable_warmup: replay the SavedModel's warmup requests before serving a version.
        max_num_load_retries: further attempts after a version fails to load; then its status
            is END with the error and the previous version keeps serving.
        load_retry_interval_seconds: the wait before each load retry.
        drain_seconds: on `stop`, how long requests already accepted get to finish.

    Example:
        >>> ServerOptions(rest_port=0, grpc_port=None, max_concurrent_requests=16)
    """

    host: str = "127.0.0.1"
    rest_port: int | None = 8501
    grpc_port: int | None = 8500
    poll_interval_seconds: float = 1.0
    max_request_bytes: int = 64 * 1024 * 1024
    workers: int = 8
    max_concurrent_requests: int = 64
    enable_warmup: bool = True
    max_num_load_retries: int = 5  # TF Serving's defaults: 5 retries, 1 minute apart
    load_retry_interval_seconds: float = 60.0
    drain_seconds: float = 10.0


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class ServerHandle:
    """A running `kattr-serve`: its ports, its model store, and `stop()`.

    Args:
        store: the model store (already started).
        rest_server: the REST server, or None.
        grpc_server: the gRPC server (already started), or None.
        grpc_port: the bound gRPC port, or None.
        host: the bound address.
        drain_seconds: `stop`'s default time for accepted requests to finish.
    """

    def __init__(
        self,
        store: ModelStore,
        rest_server: RestServer | None,
        grpc_server: grpc.Server | None,
        grpc_port: int | None,
        host: str,
        drain_seconds: float = 10.0,
    ):
        self.store = store
        self.host = host
        self.grpc_port = grpc_port
        self.drain_seconds = drain_seconds
        self._rest_server = rest_server
        self._grpc_server = grpc_server
        self._stop_once = threading.Lock()  # held for good by the first stop()
        self._stopped = threading.Event()
        self._rest_thread = None
        if rest_server is not None:
            self._rest_thread = threading.Thread(
                target=rest_server.serve_forever, name="kattr-rest", daemon=True,
                kwargs={"poll_interval": 0.1},  # how soon stop() stops the accepting loop
            )
            self._rest_thread.start()

    @property
    def model_name(self) -> str:
        return self.store.name

    @property
    def rest_port(self) -> int | None:
        return None if self._rest_server is None else self._rest_server.server_port

    @property
    def rest_url(self) -> str | None:
        """``http://host:port``, the prefix of every REST path."""
        if self.rest_port is None:
            return None
        return f"http://{_host_for_url(self.host)}:{self.rest_port}"

    @property
    def grpc_target(self) -> str | None:
        """``host:port`` for `grpc.insecure_channel`."""
        if self.grpc_port is None:
            return None
        return f"{_host_for_url(self.host)}:{self.grpc_port}"

    def stop(self, drain_seconds: float | None = None) -> None:
        """Refuses new requests, lets accepted ones finish, then stops polling.

        Requests already accepted (REST connections and gRPC calls) get `drain_seconds`
        (default: `self.drain_seconds`) to finish; those still running are then cut off. Only
        the first call stops; later ones, even from a signal handler during it, return at once.

        Example:
            >>> handle.stop(drain_seconds=5)
        """
        if not self._stop_once.acquire(blocking=False):
            return
        drain = self.drain_seconds if drain_seconds is None else drain_seconds
        grpc_stopped = None if self._grpc_server is None else self._grpc_server.stop(drain)
        if self._rest_server is not None:
            self._rest_server.stop(drain)
            self._rest_thread.join()
        if grpc_stopped is not None:
            grpc_stopped.wait()
        self.store.stop()
        self._stopped.set()

    def wait(self) -> None:
        """Blocks until `stop()` is called (from a signal handler or another thread)."""
        while not self._stopped.wait(0.5):
            pass

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve(base_path: str | os.PathLike, options: ServerOptions | None = None) -> ServerHandle:
    """Loads the latest version under `base_path` and starts the REST and gRPC servers.

    Args:
        base_path: `<folder>/<model name>` holding `<version>/` SavedModel directories.
        options: ports, limits and polling; defaults to TF Serving's ports on 127.0.0.1.

    Raises:
        ValueError: `base_path` is not a directory, a limit is not positive, or a retry count
            or duration is negative.
        OSError: a port cannot be bound.
    """
    options = options or ServerOptions()
    if not Path(base_path).is_dir():
        raise ValueError(f"--base-path {base_path}: not a directory")
    for name in ("max_request_bytes", "workers", "max_concurrent_requests"):
        if getattr(options, name) < 1:
            raise ValueError(f"{name} must be at least 1. Received: {getattr(options, name)}")
    if options.drain_seconds < 0:
        raise ValueError(f"drain_seconds must not be negative. Received: {options.drain_seconds}")
    store = ModelStore(
        base_path, options.poll_interval_seconds, options.enable_warmup,
        options.max_num_load_retries, options.load_retry_interval_seconds,
    )
    store.start()
    if store.current_version is None:
        logger.warning(
            "nothing to serve under %s yet; polling every %.1f s",
            store.base_path, options.poll_interval_seconds,
        )
    rest_server = grpc_server = grpc_port = None
    try:
        if options.rest_port is not None:
            rest_server = RestServer(
                (options.host, options.rest_port), RestApi(store), options.workers,
                options.max_request_bytes, options.max_concurrent_requests,
            )
        if options.grpc_port is not None:
            grpc_server = grpc.server(
                ThreadPoolExecutor(options.workers, thread_name_prefix="kattr-grpc"),
                options=[("grpc.max_receive_message_length", options.max_request_bytes)],
                maximum_concurrent_rpcs=options.max_concurrent_requests,
            )
            add_services(grpc_server, store)
            address = f"{_host_for_url(options.host)}:{options.grpc_port}"
            try:
                grpc_port = grpc_server.add_insecure_port(address)
            except RuntimeError as error:
                raise OSError(f"cannot bind gRPC to {address}: {error}") from None
            if grpc_port == 0:
                raise OSError(f"cannot bind gRPC to {address}")
            grpc_server.start()
    except BaseException:
        if rest_server is not None:
            rest_server.server_close()
        store.stop()
        raise
    return ServerHandle(
        store, rest_server, grpc_server, grpc_port, options.host, options.drain_seconds
    )
