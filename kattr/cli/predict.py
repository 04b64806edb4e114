"""`kattr-predict`: attributes for images from TF Serving, kattr-serve or an exported model.

Scores are keyed by value name with --model-dir (from its kattr.json) or --values-from;
otherwise they are listed in the model's value order. Labels are always value names.

Rows are written and flushed batch by batch as the server answers; if the server fails
mid-run, every finished row stays in the output and the error says how many images were
written and how many were not.

Typical usage:
    kattr-predict --grpc 127.0.0.1:8500 --model-name shirts --values-from exports/shirts photos/
    kattr-predict --rest http://127.0.0.1:8501 --model-name shirts catalog.csv -o out.csv
    kattr-predict --model-dir exports/shirts/3 shirt.jpg
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import run
from kattr.cli._sources import add_source_arguments, client_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-predict", description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs", nargs="+", help="image files, folders of images, or CSV/Parquet manifests"
    )
    add_source_arguments(parser, allow_run=False)
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


def _predict(args: argparse.Namespace) -> int:
    from kattr.client import PredictionWriter, collect_images
    from kattr.server import ServingError

    images = collect_images(args.inputs, args.image_root, args.image_column)
    writer = PredictionWriter(args.output, args.format)
    failed = 0
    try:
        with client_from_args(args) as client, writer:
            # Rows are written and flushed batch by batch, as the server answers.
            for records in client.predict_file_batches(images, args.batch_size):
                writer.write(records)
                failed += sum("error" in record for record in records)
    except ServingError as error:
        print(
            f"error: {error}; {writer.written} of {len(images)} images written to "
            f"{args.output or 'stdout'}; {len(images) - writer.written} not written",
            file=sys.stderr,
        )
        return 1
    print(f"kattr-predict: {len(images)} images, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _predict(args))


if __name__ == "__main__":
    sys.exit(main())
