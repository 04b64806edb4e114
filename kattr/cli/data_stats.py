"""`kattr-data stats`: label states and value frequencies per attribute, as tables and charts.

Prints a table and writes one PNG bar chart per attribute to `--output` (default: a `stats`
folder beside the manifest).

Typical usage:
    kattr-data stats configs/fashion-products.yaml --output /tmp/fashion-stats
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kattr.cli._common import add_config_arguments, load_config_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="label states and value frequencies per attribute (table + PNG charts)",
        description=__doc__.splitlines()[0],
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--output", help="folder for the charts (default: 'stats' beside the manifest)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kattr.labels import read_manifest
    from kattr.stats import (
        attribute_state_counts,
        compute_attribute_stats,
        format_stats,
        plot_attribute_stats,
    )

    config = load_config_from_args(args)
    frame = read_manifest(config.manifest_path)
    values = compute_attribute_stats(frame, config.taxonomy)
    states = attribute_state_counts(frame, config.taxonomy)
    print(f"{os.path.normpath(config.manifest_path)}: {len(frame)} rows")
    print(format_stats(values, states))
    output = Path(args.output or os.path.normpath(config.manifest_path.parent / "stats"))
    charts = plot_attribute_stats({"catalog": values}, output, states={"catalog": states})
    print(f"\nwrote {len(charts)} chart(s) to {output}")
    return 0
