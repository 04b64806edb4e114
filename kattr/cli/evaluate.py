"""`kattr-eval`: evaluate a trained run, optionally calibrating its thresholds first.

Typical usage:
    kattr-eval --run runs/demo                       # validation split of the run's catalog
    kattr-eval --run runs/demo --calibrate           # choose thresholds on val, then evaluate
    kattr-eval --run runs/demo --manifest held_out.csv --output reports/held_out
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory written by kattr-train")
    parser.add_argument("--manifest", help="another manifest with the run's taxonomy")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"],
                        help="split of the run's own manifest (default: val)")
    parser.add_argument("--output", help="report folder (default: RUN/eval)")
    parser.add_argument("--calibrate", action="store_true",
                        help="choose thresholds on the validation split and store them in RUN")
    parser.add_argument("--objective", default="f1", choices=["f1", "average_accuracy"])
    parser.add_argument("--per-value", action="store_true", help="one threshold per value")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from kattr.evaluation import evaluate_run
        from kattr.metrics import report_to_markdown

        report = evaluate_run(
            args.run, manifest=args.manifest, split=args.split, output_dir=args.output,
            calibrate=args.calibrate, objective=args.objective, per_value=args.per_value,
        )
        print(report_to_markdown(report))
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
