"""Inspects and hashes many images in parallel, a chunk of paths per task.

Workers return small `ImageRecord`s, never pixels, so memory stays flat however many images
there are; a progress bar counts finished images.

Example:
    >>> records = inspect_images(paths, min_side=32, max_aspect_ratio=4.0, workers=2)
    >>> sum(r.reason is None for r in records)
    8990
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial

from kattr._cores import available_cores
from kattr.curation.errors import CurationError
from kattr.curation.image_checks import ImageRecord, inspect_image
from kattr.curation.progress import ProgressBar

__all__ = ["inspect_images"]

_MAX_CHUNK = 256
_CHUNKS_PER_WORKER = 4


def _inspect_chunk(paths: list[str], min_side: int, max_aspect_ratio: float) -> list[ImageRecord]:
    return [inspect_image(path, min_side, max_aspect_ratio) for path in paths]


def inspect_images(
    paths: list[str],
    min_side: int,
    max_aspect_ratio: float,
    workers: int | None = None,
    progress: bool = True,
) -> list[ImageRecord]:
    """Runs `inspect_image` over `paths` with a process pool.

    Args:
        paths: image files.
        min_side: smallest allowed shorter side in pixels.
        max_aspect_ratio: largest allowed long/short side ratio.
        workers: processes; None uses every available core, 1 runs in this process.
        progress: draw a progress bar on stderr.

    Returns:
        One record per path, in the order of `paths`.
    """
    if workers is not None and workers < 1:
        raise CurationError(f"curation.workers must be at least 1 or null. Received: {workers}")
    workers = workers or available_cores()
    bar = ProgressBar(len(paths), "hashing images", enabled=progress)
    inspect = partial(_inspect_chunk, min_side=min_side, max_aspect_ratio=max_aspect_ratio)
    chunk_size = max(1, min(_MAX_CHUNK, math.ceil(len(paths) / (workers * _CHUNKS_PER_WORKER))))
    chunks = [paths[i : i + chunk_size] for i in range(0, len(paths), chunk_size)]
    results: list[list[ImageRecord]] = [[] for _ in chunks]
    if workers == 1 or len(chunks) <= 1:
        for index, chunk in enumerate(chunks):
            results[index] = inspect(chunk)
            bar.update(len(chunk))
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as executor:
            futures = {executor.submit(inspect, chunk): i for i, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                bar.update(len(chunks[index]))
    bar.close()
    return [record for chunk in results for record in chunk]
