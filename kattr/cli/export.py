"""`kattr-export`: write a trained run as a versioned SavedModel for TF Serving.

The version appears complete or not at all (written beside it, then renamed), and an existing
version is never overwritten. Serve it with TF Serving or `kattr-serve --base-path DIR/NAME`.

Typical usage:
    kattr-export --run runs/shirts --base-path exports                # exports/kattr/<next>
    kattr-export --run runs/shirts --base-path exports --name shirts --version 3
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-export", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory written by kattr-train")
    parser.add_argument(
        "--base-path", required=True, help="folder of model names; writes DIR/NAME/VERSION/"
    )
    parser.add_argument(
        "--name", default="kattr", help="model name, as in TF Serving URLs (default: kattr)"
    )
    parser.add_argument(
        "--version", type=int, help="version number (default: one more than the highest)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from kattr.export import export_run

        print(export_run(args.run, args.base_path, name=args.name, version=args.version))
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
