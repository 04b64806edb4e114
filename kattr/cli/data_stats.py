"""`kattr-data stats`: label states and value frequencies per attribute, as tables and charts.

Prints a table and writes one PNG bar chart per attribute to `--output` (default: a `stats`
folder beside the manifest).

With `--before MANIFEST` (e.g. the manifest a curation started from) both are shown side by
side: the tables before and after, and one chart per attribute with both bar series.

Typical usage:
    kattr-data stats configs/fashion-products.yaml --output /tmp/fashion-stats
    kattr-data stats curated/config.yaml --before work/fashion-products/labels.csv
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
    parser.add_argument(
        "--before",
        metavar="MANIFEST",
        help="another manifest of the same taxonomy shown as 'before' (e.g. before curation)",
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
    manifests = {"catalog": config.manifest_path}
    if args.before:
        manifests = {"before": Path(args.before), "after": config.manifest_path}
    values, states = {}, {}
    for name, path in manifests.items():
        frame = read_manifest(path)
        values[name] = compute_attribute_stats(frame, config.taxonomy)
        states[name] = attribute_state_counts(frame, config.taxonomy)
        print(f"{name}: {os.path.normpath(path)}: {len(frame)} rows")
        print(format_stats(values[name], states[name]))
    output = Path(args.output or os.path.normpath(config.manifest_path.parent / "stats"))
    charts = plot_attribute_stats(values, output, states=states)
    print(f"\nwrote {len(charts)} chart(s) to {output}")
    return 0
