"""`kattr-explain`: Grad-CAM heatmaps per attribute of a trained run, with an HTML gallery.

Writes overlays, one contact sheet per image, explanations.json and index.html into --output
(see kattr.explain.report). Images that cannot be decoded are reported and skipped.

Typical usage:
    kattr-explain --run runs/demo --output explained demo/images/00001.jpg demo/images/00002.jpg
    kattr-explain --run runs/demo --attribute sleeve --value long --method gradcam++ \
        --output explained --manifest demo/labels.csv --limit 20
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from kattr.cli._common import run

# Kept here so that --help needs no TensorFlow; tests check they match kattr.explain.
METHODS = ("gradcam", "gradcam++", "scorecam")
DEFAULT_COLORMAP = "inferno"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-explain", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="image files to explain")
    parser.add_argument("--run", required=True, help="a finished kattr-train run directory")
    parser.add_argument("--output", required=True, help="folder for the PNGs and index.html")
    parser.add_argument(
        "--manifest", help="CSV/Parquet manifest whose image column lists the images"
    )
    parser.add_argument("--limit", type=int, help="explain at most this many manifest rows")
    parser.add_argument(
        "--image-root",
        help="folder for relative manifest paths (default: the run config's data.image_root)",
    )
    parser.add_argument("--attribute", help="explain this attribute only (default: every one)")
    parser.add_argument(
        "--value", help="with --attribute: explain this value (default: predicted or top value)"
    )
    parser.add_argument("--method", choices=METHODS, default="gradcam", help="heatmap method")
    parser.add_argument(
        "--layer", help="feature layer to explain (default: the backbone's last feature map)"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per pass")
    parser.add_argument("--colormap", default=DEFAULT_COLORMAP, help="matplotlib colormap")
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if bool(args.images) == bool(args.manifest):
        parser.error("give image files or --manifest CSV (one of them)")
    if args.limit is not None and not args.manifest:
        parser.error("--limit needs --manifest")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1. Received: --limit {args.limit}")
    if args.value is not None and args.attribute is None:
        parser.error("--value needs --attribute")


def _manifest_paths(args: argparse.Namespace, config) -> list[str]:
    from kattr.labels import image_paths, read_manifest

    frame = read_manifest(args.manifest)
    if args.limit is not None:
        frame = frame.head(args.limit)
    if args.image_root:
        root = str(Path(args.image_root).resolve())
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, image_root=root))
    return image_paths(frame, config)


def _explain(args: argparse.Namespace) -> int:
    from kattr.explain.gradcam import Explainer
    from kattr.explain.report import explain_files
    from kattr.run_dir import load_run

    config, model, thresholds = load_run(args.run)
    explainer = Explainer(
        model, config.taxonomy, thresholds, layer=args.layer, batch_size=args.batch_size
    )
    paths = _manifest_paths(args, config) if args.manifest else args.images
    report = explain_files(
        explainer, paths, args.output, attribute=args.attribute, value=args.value,
        method=args.method, colormap=args.colormap,
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(
        f"wrote {len(report.sheets)} contact sheet(s) and {len(report.records)} overlay(s); "
        f"open {report.gallery}"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} image(s) that could not be read or decoded",
              file=sys.stderr)
    return 1 if not report.sheets else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    return run(lambda: _explain(args))


if __name__ == "__main__":
    sys.exit(main())
