"""Starts `kattr-serve`: the model store, the REST server and the gRPC server, as one handle.

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
        max_concurrent_rpcs: gRPC calls beyond this are refused with RESOURCE_EXHAUSTED.
        enable_warmup: replay the SavedModel's warmup requests before serving a version.
    """

    host: str = "127.0.0.1"
    rest_port: int | None = 8501
    grpc_port: int | None = 8500
    poll_interval_seconds: float = 1.0
    max_request_bytes: int = 64 * 1024 * 1024
    workers: int = 8
    max_concurrent_rpcs: int = 64
    enable_warmup: bool = True


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
    """

    def __init__(
        self,
        store: ModelStore,
        rest_server: RestServer | None,
        grpc_server: grpc.Server | None,
        grpc_port: int | None,
        host: str,
    ):
        self.store = store
        self.host = host
        self.grpc_port = grpc_port
        self._rest_server = rest_server
        self._grpc_server = grpc_server
        self._stopped = threading.Event()
        self._rest_thread = None
        if rest_server is not None:
            self._rest_thread = threading.Thread(
                target=rest_server.serve_forever, name="kattr-rest", daemon=True
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

    def stop(self, grace_seconds: float = 1.0) -> None:
        """Stops accepting requests, lets in-flight ones finish, stops polling."""
        if self._stopped.is_set():
            return
        if self._rest_server is not None:
            self._rest_server.shutdown()
            self._rest_server.server_close()
            self._rest_thread.join()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace_seconds).wait()
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
        ValueError: `base_path` is not a directory, or a limit is not positive.
        OSError: a port cannot be bound.
    """
    options = options or ServerOptions()
    if not Path(base_path).is_dir():
        raise ValueError(f"--base-path {base_path}: not a directory")
    for name in ("max_request_bytes", "workers", "max_concurrent_rpcs"):
        if getattr(options, name) < 1:
            raise ValueError(f"{name} must be at least 1. Received: {getattr(options, name)}")
    store = ModelStore(base_path, options.poll_interval_seconds, options.enable_warmup)
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
                options.max_request_bytes,
            )
        if options.grpc_port is not None:
            grpc_server = grpc.server(
                ThreadPoolExecutor(options.workers, thread_name_prefix="kattr-grpc"),
                options=[("grpc.max_receive_message_length", options.max_request_bytes)],
                maximum_concurrent_rpcs=options.max_concurrent_rpcs,
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
    return ServerHandle(store, rest_server, grpc_server, grpc_port, options.host)
