"""`kattr-serve`: a local server with TF Serving's REST and gRPC APIs, for development and tests.

Production uses TF Serving (see serving/README.md). The model name is the basename of
--base-path; the highest integer version directory is served, and a new one is picked up (after
its warmup) while the old one keeps serving. A version that fails to load is retried (as TF
Serving does) before it is reported failed; beyond --max-concurrent-requests requests are
refused (REST 503, gRPC RESOURCE_EXHAUSTED); SIGTERM lets accepted requests finish first.

Typical usage:
    kattr-serve --base-path exports/shirts
    curl http://127.0.0.1:8501/v1/models/shirts
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import TYPE_CHECKING

from kattr.cli._common import run

if TYPE_CHECKING:
    from kattr.server import ServerOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-path", required=True,
        help="folder <dir>/<model name> holding <version>/ SavedModel directories",
    )
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port (0: any free port)")
    parser.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (0: any free port)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes the server"
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=1.0, help="how often new versions are looked for"
    )
    parser.add_argument(
        "--max-request-bytes", type=int, default=64 * 1024 * 1024,
        help="largest accepted request body or gRPC message",
    )
    parser.add_argument("--workers", type=int, default=8, help="threads per protocol")
    parser.add_argument(
        "--max-concurrent-requests", type=int, default=64,
        help="requests in flight per protocol, beyond which REST answers 503 and gRPC "
        "RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip assets.extra/tf_serving_warmup_requests"
    )
    parser.add_argument(
        "--max-num-load-retries", type=int, default=5,
        help="further attempts after a version fails to load (TF Serving: --max_num_load_retries)",
    )
    parser.add_argument(
        "--load-retry-interval-seconds", type=float, default=60.0,
        help="wait before each load retry (TF Serving: --load_retry_interval_micros)",
    )
    parser.add_argument(
        "--drain-seconds", type=float, default=10.0,
        help="on SIGTERM, how long accepted requests get to finish",
    )
    return parser


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    """The `ServerOptions` for parsed arguments.

    Example:
        >>> options_from_args(build_parser().parse_args(["--base-path", "exports/shirts"]))
        ServerOptions(host='127.0.0.1', rest_port=8501, grpc_port=8500, ...)
    """
    from kattr.server import ServerOptions

    return ServerOptions(
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        poll_interval_seconds=args.poll_seconds,
        max_request_bytes=args.max_request_bytes,
        workers=args.workers,
        max_concurrent_requests=args.max_concurrent_requests,
        enable_warmup=not args.no_warmup,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_seconds=args.load_retry_interval_seconds,
        drain_seconds=args.drain_seconds,
    )


def _serve(args: argparse.Namespace) -> int:
    from kattr.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    handle = serve(args.base_path, options_from_args(args))
    signal.signal(signal.SIGTERM, lambda *_: handle.stop())  # drains, then wait() returns
    print(
        f"kattr-serve: model {handle.model_name!r} on REST {handle.rest_url}/v1/models/"
        f"{handle.model_name} and gRPC {handle.grpc_target} (production uses TF Serving)",
        flush=True,
    )
    try:
        handle.wait()
    finally:
        handle.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _serve(args))


if __name__ == "__main__":
    sys.exit(main())
