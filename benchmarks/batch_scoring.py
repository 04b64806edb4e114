"""Batch scoring throughput (rows/s): Apache Beam RunInference against the in-process scorer.

One synthetic catalog, one export (EfficientNetB0 at the catalog's size, weights None: the
speed does not depend on the weights), scored in ONE run by:
- in-process: `Scorer.from_model_dir(...).score_files` (what `kattr-enrich --model-dir` does);
- Beam DirectRunner, 1 worker (in-memory);
- Beam DirectRunner, N workers (multi-processing; each worker loads its own model copy).

Each Beam row includes pipeline start-up (reading the manifest, loading the model, writing
shards); the in-process row includes loading the model. Needs `pip install kattr[beam]`.

Typical usage:
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/batch_scoring.py --images 1000 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kattr.apps import Scorer, manifest_images
from kattr.apps.beam_scoring import score_on_beam
from kattr.config import load_config
from kattr.export import export_model
from kattr.model import build_model
from kattr.synth import generate_catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="Beam multi-processing workers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog = generate_catalog(
            root / "catalog", count=args.images, seed=0, image_size=args.image_size
        )
        config = load_config(catalog.config_path)
        export = export_model(build_model(config), config, None, root / "exports")
        _, paths = manifest_images(catalog.manifest_path)

        rows = []
        start = time.perf_counter()
        with Scorer.from_model_dir(export) as scorer:
            result = scorer.score_files(paths, batch_size=args.batch_size)
        rows.append(("in-process (Scorer.from_model_dir)", 1, len(paths) - len(result.failures),
                     time.perf_counter() - start))
        variants = [("Beam DirectRunner, in-memory", 1, ["--direct_num_workers=1"])]
        if args.workers > 1:
            variants.append((
                "Beam DirectRunner, multi-processing", args.workers,
                [f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_processing"],
            ))
        for index, (name, workers, options) in enumerate(variants):
            start = time.perf_counter()
            batch = score_on_beam(
                [catalog.manifest_path], export, root / f"beam{index}",
                batch_size=args.batch_size, pipeline_args=["--runner=DirectRunner", *options],
            )
            rows.append((name, workers, batch.scored, time.perf_counter() - start))

    print(f"{args.images} images of {args.image_size} px, batch {args.batch_size}, "
          f"EfficientNetB0 export")
    print("| path | workers | rows scored | seconds | rows/s | vs in-process |")
    print("|---|---|---|---|---|---|")
    reference = rows[0][2] / rows[0][3]
    for name, workers, scored, seconds in rows:
        speed = scored / seconds
        print(f"| {name} | {workers} | {scored} | {seconds:.1f} | {speed:.1f} | "
              f"{speed / reference:.2f}x |")


if __name__ == "__main__":
    main()
