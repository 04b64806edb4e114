"""`kattr-data prepare-fashion-products`: the fashion-products sample -> a kattr manifest.

Reads the raw folder named by the config's `data.image_root` (or `--source`), mines the
`pattern` column from the product names (rule: `kattr.fashion_products`) and writes the
manifest to the config's `data.manifest`. The raw folder is never written.

Typical usage:
    kattr-data prepare-fashion-products configs/fashion-products.yaml
"""

from __future__ import annotations

import argparse
import os

from kattr.cli._common import add_config_arguments, load_config_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare-fashion-products",
        help="write the manifest of the fashion-products sample with a mined pattern column",
        description=__doc__.splitlines()[0],
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--source", help="raw folder with labels.csv and images/ (default: data.image_root)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kattr.fashion_products import PATTERN_COLUMN, prepare_fashion_products
    from kattr.labels import read_manifest

    config = load_config_from_args(args)
    pattern = [a for a in config.taxonomy.attributes if a.source_column == PATTERN_COLUMN]
    manifest = config.manifest_path
    path = prepare_fashion_products(
        args.source or config.image_root,
        manifest.parent,
        pattern_applies_to=pattern[0].applies_to if pattern else None,
        manifest_name=manifest.name,
    )
    counts = read_manifest(path)[PATTERN_COLUMN].fillna("(blank)").value_counts()
    print(
        f"wrote {os.path.normpath(path)}: {int(counts.sum())} rows; "
        f"{PATTERN_COLUMN} mined from the names:"
    )
    print("\n".join(f"  {value:<10} {count}" for value, count in counts.items()))
    return 0
