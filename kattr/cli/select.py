"""`kattr-select`: the images most worth annotating next (uncertainty, optional diversity).

Rows with a blank cell of an applicable attribute are ranked by the model's uncertainty
(entropy or margin, averaged over the blank cells); --diversify picks from the most uncertain
ones with k-center greedy on the embeddings. The queue keeps the manifest's columns, blank cells
to fill, plus `uncertainty` and `rank`; it never holds more than --budget rows.

Typical usage:
    kattr-select catalog/labels.csv --run runs/shirts --budget 200 --output to-label.csv
    kattr-select catalog.csv --model-dir exports/shirts --budget 50 --strategy margin \
        --diversify --output to-label.csv
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

# Kept here so that --help needs no TensorFlow; tests check they match kattr.apps.selection.
STRATEGIES = ("entropy", "margin")
AGGREGATES = ("mean", "max")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-select", description=__doc__.splitlines()[0])
    add_manifest_arguments(parser)
    add_source_arguments(parser)
    parser.add_argument("--budget", type=int, required=True, help="the most rows to queue")
    parser.add_argument("--output", required=True, help="the queue (.csv/.parquet)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="entropy",
                        help="uncertainty per blank cell")
    parser.add_argument("--aggregate", choices=AGGREGATES, default="mean",
                        help="how a row's blank cells combine")
    parser.add_argument("--diversify", action="store_true",
                        help="k-center greedy on embeddings over the most uncertain rows")
    parser.add_argument("--pool-factor", type=int, default=3,
                        help="with --diversify: pool of the most uncertain budget*F rows")
    return parser


def _select(args: argparse.Namespace) -> int:
    from kattr.apps.selection import select_manifest

    if args.budget < 1:
        raise ValueError(f"--budget must be >= 1. Received: --budget {args.budget}")
    image_root, image_column = image_settings(args)
    with scorer_from_args(args) as scorer:
        result = select_manifest(
            args.manifest, args.output, scorer, args.budget, strategy=args.strategy,
            aggregate=args.aggregate, diversify=args.diversify, pool_factor=args.pool_factor,
            image_root=image_root, image_column=image_column, batch_size=args.batch_size,
        )
    print(
        f"queued {len(result.queue)} of {result.candidates} candidate row(s) (budget "
        f"{args.budget}); wrote {result.output}"
    )
    report_failures(result.failures, "kattr-select")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: serving_errors(_select, args))


if __name__ == "__main__":
    sys.exit(main())
