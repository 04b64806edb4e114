"""`kattr-audit`: a review queue of catalog labels that confident predictions contradict.

Ranked by evidence: the predicted value's score, its margin over the catalog value's score and,
with --tta, the agreement of a mirrored and a centre-cropped copy. With --explain (run sources),
a Grad-CAM overlay of the predicted value is written per queue row.

Typical usage:
    kattr-audit catalog/labels.csv --run runs/shirts --output audit.csv --top 100 --tta
    kattr-audit catalog/labels.csv --run runs/shirts --output audit.csv --explain audit-cams
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
    parser = argparse.ArgumentParser(prog="kattr-audit", description=__doc__.splitlines()[0])
    add_manifest_arguments(parser)
    add_source_arguments(parser)
    parser.add_argument("--output", required=True, help="the queue (.csv/.parquet)")
    parser.add_argument("--top", type=int, help="keep the K best-evidenced suspects")
    parser.add_argument(
        "--min-score", type=float, help="also require the predicted value's score to reach this"
    )
    parser.add_argument(
        "--tta", action="store_true",
        help="also score a mirrored and a centre-cropped copy (agreement column)",
    )
    parser.add_argument(
        "--explain", metavar="DIR", help="write a Grad-CAM overlay per queue row here (--run)"
    )
    return parser


def _audit(args: argparse.Namespace) -> int:
    from kattr.apps.audit import audit_manifest

    image_root, image_column = image_settings(args)
    if args.explain and not args.run:
        raise ValueError("--explain needs --run: Grad-CAM needs the Keras model of a run")
    with scorer_from_args(args) as scorer:
        result = audit_manifest(
            args.manifest, args.output, scorer, top=args.top, min_score=args.min_score,
            tta=args.tta, explain_dir=args.explain, image_root=image_root,
            image_column=image_column, batch_size=args.batch_size,
        )
    checked = ", ".join(f"{name} {count}" for name, count in result.checked.items())
    print(f"checked labelled cells: {checked}")
    counts = result.queue["attribute"].value_counts().to_dict() if len(result.queue) else {}
    print(f"queued {len(result.queue)} suspect cell(s) {counts}; wrote {result.output}")
    report_failures(result.failures, "kattr-audit")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: serving_errors(_audit, args))


if __name__ == "__main__":
    sys.exit(main())
