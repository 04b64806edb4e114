"""`kattr-similar`: the catalog products that look most like an image (a kattr-index index).

The query is embedded by the source that built the index (or the one given). Filters keep
neighbours that share the query's value (--same COLUMN: its index row's cell, or for attributes
the model's prediction) or hold a value (--where COLUMN=VALUE; repeated values of one column are
alternatives).

Typical usage:
    kattr-similar photo.jpg --index index --k 10
    kattr-similar photo.jpg --index index --same category --where colour=red --format json
"""

from __future__ import annotations

import argparse
import json
import sys

from kattr.cli._common import run
from kattr.cli._sources import serving_errors

DEFAULT_APPEARANCE_WEIGHT = 0.9  # kattr.apps.search's; kept here so --help needs no TensorFlow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-similar", description=__doc__.splitlines()[0])
    parser.add_argument("image", help="the query image file")
    parser.add_argument("--index", required=True, help="an index folder from kattr-index")
    parser.add_argument("--k", type=int, default=10, help="neighbours to return")
    parser.add_argument("--same", action="append", default=[], metavar="COLUMN",
                        help="neighbours share the query's value in COLUMN (repeatable)")
    parser.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                        help="neighbours hold VALUE in COLUMN (repeatable)")
    parser.add_argument(
        "--appearance-weight", type=float, default=DEFAULT_APPEARANCE_WEIGHT,
        help="share of the appearance descriptor in the similarity; 0 = model embedding only",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="output format")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", metavar="DIR", help="embed with this run (default: the index's)")
    source.add_argument("--model-dir", metavar="DIR", help="embed with this export")
    return parser


def _similar(args: argparse.Namespace) -> int:
    from kattr.apps.search import SimilarityIndex, parse_where, similar
    from kattr.apps.sources import open_scorer, open_source

    if args.k < 1:
        raise ValueError(f"--k must be >= 1. Received: --k {args.k}")
    where = parse_where(args.where)
    index = SimilarityIndex.load(args.index)
    # Unknown columns and values fail here, before the model is loaded.
    index.mask(where)
    for column in args.same:
        index.resolve_column(column)
    if args.run or args.model_dir:
        scorer = open_scorer(run=args.run, model_dir=args.model_dir)
    else:
        scorer = open_source(index.source)
    with scorer:
        neighbours = similar(
            index, scorer, args.image, k=args.k, same=args.same, where=where,
            appearance_weight=args.appearance_weight,
        )
    if args.format == "json":
        records = neighbours.astype(object).where(neighbours.notna(), None).to_dict("records")
        print(json.dumps(records, indent=2, default=str))
    else:
        table = neighbours.astype(object).fillna("")
        print(table.to_string(index=False) if len(table) else "no neighbours")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: serving_errors(_similar, args))


if __name__ == "__main__":
    sys.exit(main())
