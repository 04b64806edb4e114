"""`kattr-eval`: evaluate a trained run, optionally calibrating its thresholds first.

Typical usage:
    kattr-eval --run runs/demo                       # val split (test once calibrated)
    kattr-eval --run runs/demo --calibrate           # choose thresholds on val, report on test
    kattr-eval --run runs/demo --manifest held_out.csv --output reports/held_out

The report (RUN/eval/report.json) states `calibrated_on`, `reported_on` and `optimistic`:
reporting on rows the thresholds were calibrated on prints a warning and sets `optimistic`.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from kattr.cli._common import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory written by kattr-train")
    parser.add_argument("--manifest", help="another manifest with the run's taxonomy")
    parser.add_argument("--split", choices=["train", "val", "test"],
                        help="split of the run's own manifest to report on (default: test when "
                             "thresholds are calibrated, else val)")
    parser.add_argument("--output", help="report folder (default: RUN/eval)")
    parser.add_argument("--calibrate", action="store_true",
                        help="choose thresholds on --calibrate-on and store them in RUN")
    parser.add_argument("--calibrate-on", default="val", choices=["train", "val", "test"],
                        help="split thresholds are calibrated on (default: val)")
    parser.add_argument("--objective", default="f1", choices=["f1", "average_accuracy"])
    parser.add_argument("--per-value", action="store_true", help="one threshold per value")
    return parser


def _banner(report: dict) -> str:
    line = "!" * 78
    return (
        f"{line}\nWARNING: OPTIMISTIC REPORT. {report['calibration_overlap_rows']} of the "
        f"{report['rows']} reported rows ({report['reported_on']}) were used to calibrate the "
        f"thresholds ({report['calibrated_on']}).\nThese numbers overstate performance on new "
        f"data; report on another split (--split).\n{line}"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from kattr.evaluation import OptimisticReportWarning, evaluate_run
        from kattr.metrics import report_to_markdown

        with warnings.catch_warnings():
            # The banner below says it louder; don't print it twice.
            warnings.simplefilter("ignore", OptimisticReportWarning)
            report = evaluate_run(
                args.run, manifest=args.manifest, split=args.split, output_dir=args.output,
                calibrate=args.calibrate, objective=args.objective, per_value=args.per_value,
                calibrate_on=args.calibrate_on,
            )
        print(f"thresholds calibrated on: {report['calibrated_on'] or 'not calibrated'}; "
              f"reported on: {report['reported_on']} ({report['rows']} rows)")
        print(report_to_markdown(report))
        if report["optimistic"]:
            print(_banner(report), file=sys.stderr)
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
