"""Helpers shared by the `kattr-*` command-line tools: config arguments and error reporting."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

__all__ = ["add_config_arguments", "load_config_from_args", "run"]


def add_config_arguments(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """Adds the config file argument and repeatable ``--set KEY.PATH=VALUE`` overrides."""
    if positional:
        parser.add_argument("config", help="experiment YAML (see configs/)")
    else:
        parser.add_argument("--config", required=True, help="experiment YAML (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )


def load_config_from_args(args: argparse.Namespace):
    """Loads the config named by `add_config_arguments`' arguments."""
    from kattr.config import load_config

    return load_config(args.config, args.overrides)


def run(main: Callable[[], int | None]) -> int:
    """Runs a CLI body; input errors become one line on stderr and exit status 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return main() or 0
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
