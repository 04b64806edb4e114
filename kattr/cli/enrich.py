"""`kattr-enrich`: fill blank attribute cells of a manifest with confident predictions.

Cells of attributes that apply to the row's category are filled where the post-processed
prediction (calibrated thresholds, exclusivity, and --min-score when given) decides values.
Writes a new manifest with `<attr>_source` (catalog|model) and `<attr>_score` columns, and
`<output stem>.summary.json` beside it; the input is never overwritten.

Typical usage:
    kattr-enrich catalog/labels.csv --run runs/shirts --output enriched.csv --min-score 0.8
    kattr-enrich catalog.csv --grpc 127.0.0.1:8500 --model-name shirts \
        --values-from exports/shirts --output enriched.csv
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
    parser = argparse.ArgumentParser(prog="kattr-enrich", description=__doc__.splitlines()[0])
    add_manifest_arguments(parser)
    add_source_arguments(parser)
    parser.add_argument("--output", required=True, help="the enriched manifest (.csv/.parquet)")
    parser.add_argument(
        "--min-score", type=float,
        help="also require each filled value's score to reach this (stricter than thresholds)",
    )
    return parser


def _enrich(args: argparse.Namespace) -> int:
    from kattr.apps.enrich import enrich_manifest, summary_path, summary_table

    image_root, image_column = image_settings(args)
    with scorer_from_args(args) as scorer:
        result = enrich_manifest(
            args.manifest, args.output, scorer, min_score=args.min_score,
            image_root=image_root, image_column=image_column, batch_size=args.batch_size,
        )
    print(summary_table(result.summary))
    filled = sum(counts["filled"] for counts in result.summary.values())
    print(f"filled {filled} cell(s); wrote {result.output} and {summary_path(result.output)}")
    report_failures(result.failures, "kattr-enrich")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: serving_errors(_enrich, args))


if __name__ == "__main__":
    sys.exit(main())
