"""Throughput of curation's image hashing on a real catalog, and peak memory.

Checks and hashes every image of the config's manifest (repeated up to `--images` paths to
measure a larger catalog without more files), with 1 worker and with every core, then groups
duplicates. Prints images per second and the peak resident memory of this process and of the
worker processes.

Typical usage:
    .venv/bin/python benchmarks/curate_throughput.py configs/fashion-products.yaml
    .venv/bin/python benchmarks/curate_throughput.py configs/fashion-products.yaml --images 100000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from kattr._cores import available_cores
from kattr.config import load_config
from kattr.curation.duplicates import duplicate_groups
from kattr.curation.hashing import inspect_images
from kattr.curation.image_checks import THUMBNAIL_SIDE
from kattr.labels import image_paths, read_manifest


def _peak_megabytes(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports kilobytes


def _paths(config_path: str, images: int | None) -> list[str]:
    config = load_config(config_path)
    manifest = config.manifest_path
    if not manifest.exists():  # not prepared yet: the raw manifest beside the images
        manifest = config.image_root / "labels.csv"
    paths = image_paths(read_manifest(manifest), config)
    if images:
        paths = [paths[i % len(paths)] for i in range(images)]
    return paths


def _hash(paths: list[str], workers: int) -> tuple[list, float]:
    start = time.perf_counter()
    records = inspect_images(paths, min_side=32, max_aspect_ratio=4.0, workers=workers)
    return records, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/fashion-products.yaml")
    parser.add_argument("--images", type=int, help="paths to hash (the manifest repeated)")
    parser.add_argument("--skip-single", action="store_true", help="skip the 1-worker run")
    args = parser.parse_args(argv)

    paths = _paths(args.config, args.images)
    print(f"{len(paths):,} images ({len(set(paths)):,} files) from {Path(args.config)}")
    print(f"memory before hashing: {_peak_megabytes(resource.RUSAGE_SELF):,.0f} MB peak RSS")
    runs = [available_cores()] if args.skip_single else [1, available_cores()]
    for workers in dict.fromkeys(runs):
        records, seconds = _hash(paths, workers)
        rate = len(paths) / seconds
        print(f"hashing, {workers} worker(s): {seconds:.1f} s, {rate:,.0f} images/s")
    valid = [r for r in records if r.reason is None]
    side = THUMBNAIL_SIDE
    start = time.perf_counter()
    found = duplicate_groups(
        [r.content_hash for r in valid],
        [r.perceptual_hash for r in valid],
        np.stack([np.frombuffer(r.thumbnail, np.uint8) for r in valid]).reshape(-1, side, side, 3),
        np.array([r.width * r.height for r in valid]),
        max_distance=4,
    )
    print(
        f"duplicate grouping: {time.perf_counter() - start:.1f} s, "
        f"{len(found.kept):,} groups over {int((found.groups >= 0).sum()):,} images"
    )
    print(f"peak RSS, this process: {_peak_megabytes(resource.RUSAGE_SELF):,.0f} MB")
    print(f"peak RSS, largest worker: {_peak_megabytes(resource.RUSAGE_CHILDREN):,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
