"""`kattr-data curate`: validate, de-duplicate, merge, prune and split a catalog.

Writes a new folder (never touching the inputs) with the curated manifest `labels.csv` (with a
train/val/test column), a `config.yaml` that trains on it as is, `removed.csv`,
`duplicates.csv`, `report.md`, `report.json` and before/after statistics in `stats/`.
Settings come from the config's `curation:` section and `data.splits`.

Typical usage:
    kattr-data curate configs/fashion-products.yaml --output work/fashion-products-curated
    kattr-train --config work/fashion-products-curated/config.yaml
"""

from __future__ import annotations

import argparse

from kattr.cli._common import add_config_arguments, load_config_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "curate",
        help="validate, de-duplicate, merge, prune and split a catalog into a new folder",
        description=__doc__.splitlines()[0],
    )
    add_config_arguments(parser)
    parser.add_argument("--output", required=True, help="folder to create for the results")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --output if it exists and is not empty"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar or stage messages on stderr"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kattr.curation import curate

    config = load_config_from_args(args)
    result = curate(config, args.output, progress=not args.quiet, overwrite=args.overwrite)
    removed = ", ".join(f"{reason} {count}" for reason, count in result.removed.items())
    print(f"{result.input_rows} rows in, {result.kept_rows} kept; removed: {removed or 'none'}")
    print(
        f"duplicate groups: {result.duplicate_groups} ({result.exact_duplicate_groups} exact, "
        f"{result.near_duplicate_groups} near), {result.conflict_groups} with conflicting labels"
    )
    print(
        f"merged cell values: {result.merged_cells}; rare values: {result.rare_values} "
        f"({result.rare_cells_changed} cells changed)"
    )
    print(
        "splits: " + ", ".join(
            f"{name} {size} (max share difference {result.split_max_share_difference[name]:.3f})"
            for name, size in result.split_sizes.items()
        )
    )
    print(f"wrote {result.output_dir} (see report.md)")
    return 0
