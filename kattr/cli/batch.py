"""`kattr-batch`: score a whole catalog with an exported model on Apache Beam (RunInference).

Writes sharded scores and embeddings into --output; `kattr-enrich`, `kattr-audit`,
`kattr-select` and `kattr-index` then read them with `--scores DIR` instead of a model.
Arguments after `--` are Beam pipeline options (runner, workers, project, ...).

Typical usage:
    kattr-batch catalog/labels.csv --model-dir exports/shirts --output scores/run1
    kattr-batch 'manifests/part-*.parquet' --model-dir exports/shirts/3 --output scores/run1 \
        --appearance -- --direct_num_workers=2 --direct_running_mode=multi_processing
    kattr-enrich catalog/labels.csv --scores scores/run1 --output enriched.csv
"""

from __future__ import annotations

import argparse
import sys

from kattr.cli._common import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kattr-batch", description=__doc__.splitlines()[0])
    parser.add_argument(
        "manifests", nargs="+", metavar="MANIFEST",
        help="CSV/Parquet manifest files or glob patterns (quote them), e.g. 'parts/*.parquet'",
    )
    parser.add_argument("--model-dir", required=True, help="exported SavedModel or base path")
    parser.add_argument("--output", required=True, help="folder for scores-*.jsonl and batch.json")
    parser.add_argument(
        "--image-root", help="folder for relative image paths (default: each manifest's folder)"
    )
    parser.add_argument("--image-column", default="image", help="manifest column of image paths")
    parser.add_argument("--batch-size", type=int, default=32, help="images per model call")
    parser.add_argument(
        "--appearance", action="store_true",
        help="also store appearance descriptors (needed by kattr-index --scores)",
    )
    parser.add_argument(
        "--num-shards", type=int, default=0, help="score shards to write (0: the runner decides)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run's files")
    return parser


def _split_beam_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _batch(args: argparse.Namespace, pipeline_args: list[str]) -> int:
    from kattr.apps.beam_scoring import score_on_beam

    result = score_on_beam(
        args.manifests, args.model_dir, args.output, image_root=args.image_root,
        image_column=args.image_column, appearance=args.appearance, batch_size=args.batch_size,
        num_shards=args.num_shards, pipeline_args=pipeline_args, overwrite=args.overwrite,
    )
    print(f"scored {result.scored} image(s), {result.failed} failed, in {result.seconds:.1f} s; "
          f"wrote {result.output}")
    for failure in result.failures[:10]:
        print(f"  {failure['manifest']}: row {failure['row'] + 1}: {failure['path'] or '-'}: "
              f"{failure['reason']}", file=sys.stderr)
    if result.failed > 10:
        print(f"  ... and {result.failed - 10} more (failures-*.jsonl)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    own, pipeline_args = _split_beam_arguments(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(own)
    return run(lambda: _batch(args, pipeline_args))


if __name__ == "__main__":
    sys.exit(main())
