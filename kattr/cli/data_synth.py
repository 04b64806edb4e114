"""`kattr-data synth`: writes a synthetic catalog (images, labels, config, evidence boxes).

Typical usage:
    kattr-data synth demo --count 600 --seed 0 --image-size 64
    kattr-train demo/config.yaml
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers the `synth` subcommand on the `kattr-data` subparsers.

    Example:
        >>> parser = argparse.ArgumentParser(prog="kattr-data")
        >>> add_parser(parser.add_subparsers(dest="command"))
    """
    parser = subparsers.add_parser(
        "synth",
        help="draw a synthetic catalog with known, localised attribute evidence",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="catalog folder to create")
    parser.add_argument("--count", type=int, default=600, help="valid images (default: 600)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--image-size", type=int, default=64, metavar="PX", help="image side (default: 64)"
    )
    parser.add_argument(
        "--missing-rate", type=float, default=0.1,
        help="share of applicable label cells left blank (default: 0.1)",
    )
    parser.add_argument(
        "--noise-rate", type=float, default=0.0,
        help="share of label cells replaced by a wrong value (default: 0.0)",
    )
    parser.add_argument(
        "--corrupt", type=int, default=0, metavar="N",
        help="extra rows whose image file cannot be decoded (default: 0)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace OUT_DIR if it holds a previous synthetic catalog",
    )
    parser.set_defaults(func=_synth)
    return parser


def _synth(args: argparse.Namespace) -> int:
    from kattr.synth import generate_catalog

    catalog = generate_catalog(
        args.out_dir,
        count=args.count,
        seed=args.seed,
        image_size=args.image_size,
        missing_rate=args.missing_rate,
        noise_rate=args.noise_rate,
        corrupt=args.corrupt,
        overwrite=args.overwrite,
    )
    corrupt = f" (+{len(catalog.corrupt_images)} corrupt)" if catalog.corrupt_images else ""
    print(f"wrote {args.count} images{corrupt} of {args.image_size} px to {catalog.root}")
    print("  " + ", ".join(f"{name} {n}" for name, n in catalog.category_counts.items()))
    print(f"  labels:  {catalog.manifest_path}")
    print(f"  config:  {catalog.config_path}")
    print(f"  truth:   {catalog.truth_path}")
    print(f"  regions: {catalog.regions_path}")
    print(f"next: kattr-train --config {catalog.config_path}")
    return 0
