"""`kattr-data`: synthetic catalogs, validation, statistics, curation and dataset preparation.

Typical usage:
    kattr-data synth demo --count 600
    kattr-data validate demo/config.yaml
    kattr-data stats demo/config.yaml --output demo/stats
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kattr.cli._common import run

# Each subcommand lives in its own module exposing `add_parser(subparsers)`.
SUBCOMMAND_MODULES = (
    "kattr.cli.data_synth",
    "kattr.cli.data_validate",
    "kattr.cli.data_stats",
    "kattr.cli.data_curate",
    "kattr.cli.data_prepare",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-data", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
