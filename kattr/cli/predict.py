"""`kattr-predict`: attributes for images from TF Serving, kattr-serve or an exported model.

Scores are keyed by value name with --model-dir (from its kattr.json) or --values-from;
otherwise they are listed in the model's value order. Labels are always value names.

Typical usage:
    kattr-predict --grpc 127.0.0.1:8500 --model-name shirts --values-from exports/shirts photos/
    kattr-predict --rest http://127.0.0.1:8501 --model-name shirts catalog.csv -o out.csv
    kattr-predict --model-dir exports/shirts/3 shirt.jpg
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-predict", description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs", nargs="+", help="image files, folders of images, or CSV/Parquet manifests"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rest", metavar="URL", help="REST server, e.g. http://127.0.0.1:8501")
    source.add_argument("--grpc", metavar="HOST:PORT", help="gRPC server, e.g. 127.0.0.1:8500")
    source.add_argument(
        "--model-dir", help="exported SavedModel (or base path) run in this process, no server"
    )
    parser.add_argument("--model-name", help="served model name (required with --rest/--grpc)")
    parser.add_argument("--version", type=int, help="a specific model version (default: latest)")
    parser.add_argument("--signature", default="serving_default", help="signature to run")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument(
        "--retries", type=int, default=3,
        help="retries with backoff while the server is UNAVAILABLE",
    )
    parser.add_argument(
        "--values-from", metavar="PATH",
        help="kattr.json, export dir or base path naming the score values (servers only)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per request")
    parser.add_argument(
        "--image-root", help="folder for relative manifest paths (default: the manifest's folder)"
    )
    parser.add_argument("--image-column", default="image", help="manifest column of image paths")
    parser.add_argument("-o", "--output", help="output file (default: stdout)")
    parser.add_argument(
        "--format", choices=("jsonl", "csv"), help="output format (default: from --output suffix)"
    )
    return parser


def _client(args: argparse.Namespace):
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


def _predict(args: argparse.Namespace) -> int:
    from kattr.client import collect_images, write_predictions
    from kattr.server import ServingError

    images = collect_images(args.inputs, args.image_root, args.image_column)
    try:
        with _client(args) as client:
            records = list(client.predict_files(images, args.batch_size))
    except ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_predictions(records, args.output, args.format)
    failed = sum("error" in record for record in records)
    print(f"kattr-predict: {len(records)} images, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _predict(args))


if __name__ == "__main__":
    sys.exit(main())
