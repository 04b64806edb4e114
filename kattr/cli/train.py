"""`kattr-train`: train a multi-task attribute model into a run directory.

Typical usage:
    kattr-train --config demo/config.yaml --set train.epochs=3 --output runs/demo

Starting the same command again after an interruption resumes from the last finished epoch.
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import add_config_arguments, load_config_from_args, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-train", description=__doc__.splitlines()[0])
    add_config_arguments(parser, positional=False)
    parser.add_argument("--output", required=True, help="run directory (created)")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from kattr.metrics import report_to_markdown
        from kattr.training import train

        result = train(
            load_config_from_args(args), args.output, verbose=2 if args.quiet else "auto"
        )
        print(f"\nvalidation report ({result.run_dir}/eval/report.md):\n")
        print(report_to_markdown(result.report))
        print(f"best model: {result.run_dir}/model.keras")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
