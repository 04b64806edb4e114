"""Model-source and manifest arguments shared by kattr-predict and the catalog applications.

One argument group names where the model is: `--run DIR | --scores DIR | --model-dir DIR |
--rest URL | --grpc HOST:PORT`, with `--model-name`, `--values-from` and the request settings
for servers.
"""

from __future__ import annotations

import argparse

from kattr import serving_contract

__all__ = [
    "add_manifest_arguments",
    "add_source_arguments",
    "client_from_args",
    "image_settings",
    "report_failures",
    "scorer_from_args",
    "serving_errors",
]


def add_source_arguments(parser: argparse.ArgumentParser, allow_run: bool = True) -> None:
    """Adds the mutually exclusive model source and the server request settings."""
    source = parser.add_mutually_exclusive_group(required=True)
    if allow_run:
        source.add_argument("--run", metavar="DIR", help="a kattr-train run directory")
        source.add_argument(
            "--scores", metavar="DIR",
            help="scores computed ahead by kattr-batch (Apache Beam) for this manifest",
        )
    source.add_argument(
        "--model-dir", metavar="DIR",
        help="exported SavedModel (or base path) run in this process, no server",
    )
    source.add_argument("--rest", metavar="URL", help="REST server, e.g. http://127.0.0.1:8501")
    source.add_argument("--grpc", metavar="HOST:PORT", help="gRPC server, e.g. 127.0.0.1:8500")
    parser.add_argument("--model-name", help="served model name (required with --rest/--grpc)")
    parser.add_argument(
        "--version", type=int,
        help="a specific model version (default: the one served when the run starts); every "
        "request goes to that version, and the run stops if the server drops it",
    )
    parser.add_argument(
        "--signature", default=serving_contract.DEFAULT_SIGNATURE, help="signature to run"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument(
        "--retries", type=int, default=3,
        help="retries with backoff while the server is UNAVAILABLE",
    )
    parser.add_argument(
        "--values-from", metavar="PATH",
        help="kattr.json, export dir or base path of the served model: its value names"
        + (", taxonomy and thresholds" if allow_run else "")
        + " (servers only; must match the served model's outputs)",
    )


def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds MANIFEST and how its images are found."""
    parser.add_argument("manifest", help="CSV/Parquet manifest with an image column")
    parser.add_argument(
        "--config", help="experiment YAML whose data.image_root and data.image_column apply"
    )
    parser.add_argument(
        "--image-root",
        help="folder for relative image paths (default: --config's data.image_root, else the "
        "manifest's folder)",
    )
    parser.add_argument(
        "--image-column", help="manifest column of image paths (default: --config's, or image)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")


def image_settings(args: argparse.Namespace) -> tuple[str | None, str]:
    """`(image_root, image_column)` from --image-root/--image-column, else --config."""
    root, column = args.image_root, args.image_column
    if args.config:
        from kattr.config import load_config

        config = load_config(args.config)
        root = root or str(config.image_root)
        column = column or config.data.image_column
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1. Received: {args.batch_size}")
    return root, column or "image"


def client_from_args(args: argparse.Namespace):
    """A `PredictClient` of --model-dir, --rest or --grpc (kattr-predict)."""
    from kattr.client import PredictClient, read_value_names

    arguments = {"retries": args.retries}
    if args.values_from:
        arguments["value_names"] = read_value_names(args.values_from)
    if args.model_dir:
        return PredictClient.from_model_dir(args.model_dir, args.signature, **arguments)
    if not args.model_name:
        raise ValueError("--model-name is required with --rest and --grpc")
    factory = PredictClient.from_rest if args.rest else PredictClient.from_grpc
    return factory(
        args.rest or args.grpc, args.model_name, args.signature, args.version, args.timeout,
        **arguments,
    )


def scorer_from_args(args: argparse.Namespace):
    """The `kattr.apps.Scorer` of --run, --scores, --model-dir, --rest or --grpc."""
    from kattr.apps.sources import open_scorer

    return open_scorer(
        run=getattr(args, "run", None), scores=getattr(args, "scores", None),
        model_dir=args.model_dir, rest=args.rest,
        grpc=args.grpc, model_name=args.model_name, values_from=args.values_from,
        version=args.version, signature=args.signature, timeout=args.timeout,
        retries=args.retries,
    )


def report_failures(failures, name: str, limit: int = 10) -> None:
    """Prints how many images failed and names the first ones (row, file, reason) on stderr."""
    import sys

    if not failures:
        return
    print(f"{name}: {len(failures)} image(s) could not be scored:", file=sys.stderr)
    for failure in failures[:limit]:
        print(f"  row {failure.row + 1}: {failure.path}: {failure.reason}", file=sys.stderr)
    if len(failures) > limit:
        print(f"  ... and {len(failures) - limit} more", file=sys.stderr)


def serving_errors(body, args: argparse.Namespace) -> int:
    """Runs a CLI body; server errors (unreachable, unknown model) become one line, status 1."""
    import sys

    from kattr.server import ServingError

    try:
        return body(args)
    except ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
