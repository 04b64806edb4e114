"""`kattr-serve`: a local server with TF Serving's REST and gRPC APIs, for development and tests.

Production uses TF Serving (see serving/README.md). The model name is the basename of
--base-path; the highest integer version directory is served, and a new one is picked up (after
its warmup) while the old one keeps serving.

Typical usage:
    kattr-serve --base-path exports/shirts
    curl http://127.0.0.1:8501/v1/models/shirts
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from kattr.cli._common import run


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
        "--no-warmup", action="store_true", help="skip assets.extra/tf_serving_warmup_requests"
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    from kattr.server import ServerOptions, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    options = ServerOptions(
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        poll_interval_seconds=args.poll_seconds,
        max_request_bytes=args.max_request_bytes,
        workers=args.workers,
        enable_warmup=not args.no_warmup,
    )
    handle = serve(args.base_path, options)
    signal.signal(signal.SIGTERM, lambda *_: handle.stop())
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
