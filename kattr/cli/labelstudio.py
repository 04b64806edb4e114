"""`kattr-labelstudio`: review kattr's audit and selection queues in Label Studio.

`export` writes a queue as Label Studio tasks pre-annotated with kattr's predictions, and the
labeling config to paste into the project (Settings > Labeling Interface); `import` applies a
Label Studio `JSON` or `JSON_MIN` export back to the manifest, as a new file, with
`<attribute>_source=review`, and reports conflicts. The taxonomy comes from the run that made
the queue (`--run RUN_DIR`) or an experiment config (`--config CFG`).

Typical usage:
    kattr-labelstudio export audit.csv --run runs/shirts --output tasks.json \
        --image-prefix "/data/local-files/?d=catalog/"
    kattr-labelstudio import export.json --run runs/shirts --manifest catalog/labels.csv \
        --output catalog/labels.reviewed.csv --conflicts conflicts.csv
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import run

_MAX_CONFLICT_LINES = 20


def _add_taxonomy_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_DIR", help="the kattr-train run (its taxonomy)")
    source.add_argument("--config", metavar="CFG", help="an experiment YAML (its taxonomy)")
    parser.add_argument(
        "--image-column",
        help="the manifest's image column (default: the config's data.image_column)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-labelstudio", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="queue -> Label Studio tasks + labeling config")
    export.add_argument("queue", help="a kattr-audit or kattr-select queue (.csv/.parquet)")
    _add_taxonomy_arguments(export)
    export.add_argument("--output", required=True, help="the tasks file (.json) to import")
    export.add_argument(
        "--config-output", metavar="XML",
        help="the labeling config (default: <output stem>.config.xml beside --output)",
    )
    export.add_argument("--model-version", help="the predictions' model_version (default: "
                        "the run's folder name, else the config's file name)")
    export.add_argument(
        "--image-prefix", default="",
        help="prepended to image paths to make the task's image URL, e.g. "
        "'/data/local-files/?d=' (Label Studio local files) or 'https://cdn.example.com/'",
    )
    export.add_argument(
        "--predict", action="store_true",
        help="selection queues: score the queue's images with --run's model and pre-annotate "
        "their blank cells (audit queues carry their predictions)",
    )
    export.add_argument("--image-root", help="with --predict: folder of relative image paths "
                        "(default: the config's data.image_root)")
    review = commands.add_parser("import", help="Label Studio export -> reviewed manifest")
    review.add_argument("export", help="a Label Studio JSON or JSON_MIN export")
    _add_taxonomy_arguments(review)
    review.add_argument("--manifest", required=True, help="the manifest to apply it to")
    review.add_argument("--output", required=True, help="the reviewed manifest (a new file)")
    review.add_argument("--conflicts", metavar="CSV", help="also write every conflict here")
    return parser


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kattr.apps.labelstudio import export_queue, load_review_config

    config = load_review_config(args.config, args.run)
    column = args.image_column or config.data.image_column
    version = args.model_version or (Path(args.run).resolve().name if args.run
                                     else Path(args.config).stem)
    scores = None
    if args.predict:
        scores = _score_queue(args, column, config)
    result = export_queue(
        args.queue, args.output, config.taxonomy, args.config_output, version,
        args.image_prefix, column, scores,
    )
    predicted = sum(1 for task in result.tasks if task.get("predictions"))
    print(f"{result.kind} queue: {len(result.tasks)} task(s), {predicted} pre-annotated "
          f"(model_version {version!r}); wrote {result.output} and {result.config_output}")
    return 0


def _score_queue(args: argparse.Namespace, column: str, config):
    from kattr.apps.scoring import Scorer, manifest_images
    from kattr.cli._sources import report_failures

    if not args.run:
        raise ValueError("--predict needs --run: the model that scores the queue's images")
    root = args.image_root or str(config.image_root)
    _, paths = manifest_images(args.queue, root, column)
    with Scorer.from_run(args.run) as scorer:
        scores = scorer.score_files(paths)
    report_failures(scores.failures, "kattr-labelstudio")
    return scores


def _import(args: argparse.Namespace) -> int:
    from kattr.apps.labelstudio import load_review_config
    from kattr.apps.labelstudio_review import import_review
    from kattr.labels import write_manifest

    config = load_review_config(args.config, args.run)
    column = args.image_column or config.data.image_column
    result = import_review(args.export, args.manifest, args.output, config.taxonomy, column)
    export = result.export
    print(f"{export.format} export: {export.tasks} task(s), {len(export.annotations)} "
          f"annotation(s), {export.cancelled} cancelled, {export.unannotated} task(s) without one")
    reviewed = {name: count for name, count in result.reviewed.items() if count}
    changed = {name: count for name, count in result.changed.items() if count}
    print(f"reviewed {sum(reviewed.values())} cell(s) {reviewed}, changed "
          f"{sum(changed.values())} {changed}; wrote {result.output}")
    if result.conflicts:
        print(f"{len(result.conflicts)} conflict(s) {result.conflict_counts()}, left unchanged:",
              file=sys.stderr)
        for conflict in result.conflicts[:_MAX_CONFLICT_LINES]:
            where = f"row {conflict.row}" if conflict.row is not None else "no row"
            print(f"  {conflict.kind}: {where}, {conflict.attribute or '-'}, task(s) "
                  f"{', '.join(conflict.tasks)}: {conflict.detail}", file=sys.stderr)
        if len(result.conflicts) > _MAX_CONFLICT_LINES:
            print(f"  ... and {len(result.conflicts) - _MAX_CONFLICT_LINES} more",
                  file=sys.stderr)
    if args.conflicts:
        write_manifest(result.conflict_table(), args.conflicts)
        print(f"wrote {len(result.conflicts)} conflict(s) to {args.conflicts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: _export(args) if args.command == "export" else _import(args))


if __name__ == "__main__":
    sys.exit(main())
