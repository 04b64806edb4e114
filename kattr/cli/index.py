"""`kattr-index`: a visual-search index of a catalog's embeddings (see kattr-similar).

Stores the model embedding and an appearance descriptor of every image that could be scored,
the manifest rows as metadata, and the model source that built it; written atomically (an
existing index folder is replaced only once the new one is complete).

Typical usage:
    kattr-index catalog/labels.csv --run runs/shirts --output index
    kattr-index catalog.csv --rest http://127.0.0.1:8501 --model-name shirts \
        --values-from exports/shirts --output index
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import run
from kattr.cli._sources import (
    add_manifest_arguments,
    add_source_arguments,
    image_settings,
    report_failures,
    scorer_from_args,
    serving_errors,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-index", description=__doc__.splitlines()[0])
    add_manifest_arguments(parser)
    add_source_arguments(parser)
    parser.add_argument("--output", required=True, help="the index folder")
    return parser


def _index(args: argparse.Namespace) -> int:
    from kattr.apps.search import index_manifest

    image_root, image_column = image_settings(args)
    with scorer_from_args(args) as scorer:
        index, failures = index_manifest(
            args.manifest, args.output, scorer, image_root=image_root,
            image_column=image_column, batch_size=args.batch_size,
        )
    print(f"indexed {len(index)} image(s), embedding width {index.width}; wrote {args.output}")
    report_failures(failures, "kattr-index")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: serving_errors(_index, args))


if __name__ == "__main__":
    sys.exit(main())
