"""`kattr-data validate`: checks a manifest against the taxonomy and the image files.

Prints a summary and the first rows of each problem kind; exits with 1 when an error was found
(warnings alone exit 0). Nothing is written.

Typical usage:
    kattr-data validate configs/fashion-products.yaml --max-rows 5
"""

from __future__ import annotations

import argparse

from kattr.cli._common import add_config_arguments, load_config_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a manifest against the taxonomy and the image files",
        description=__doc__.splitlines()[0],
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--max-rows", type=int, default=10, help="problems shown per kind (default: 10)"
    )
    parser.add_argument(
        "--no-images", action="store_true", help="only check that image files exist; skip decoding"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="threads decoding images (default: every core)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kattr.validate import validate_catalog

    report = validate_catalog(
        load_config_from_args(args),
        check_images=not args.no_images,
        max_rows=args.max_rows,
        workers=args.workers,
    )
    print(report.format())
    return 0 if report.ok else 1
