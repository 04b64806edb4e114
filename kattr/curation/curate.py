"""`curate`: validate, de-duplicate, merge, prune and split a catalog, writing a new folder.

Stages, in order (each removed row gets the reason of the first stage that removes it):
1. label cells canonicalised and taxonomy merges applied; unknown values per `data.on_unknown`;
2. every image checked and hashed in parallel; invalid images removed;
3. exact and near duplicates grouped, one image kept per group, label conflicts settled;
4. values with fewer than `curation.min_count` examples kept, set missing or merged;
5. train/val/test assigned by iterative stratification.

The output folder holds `labels.csv` (the curated manifest with a split column),
`config.yaml` (trains on it as is), `removed.csv`, `duplicates.csv`, `report.md`,
`report.json` and `stats/`. It is written beside its final place and renamed into it; the
inputs are only read.

Example:
    >>> result = curate(load_config("configs/fashion-products.yaml"), "work/curated")
    >>> result.input_rows == result.kept_rows + sum(result.removed.values())
    True
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kattr._cores import available_cores
from kattr.config import Config, save_config
from kattr.curation.conflicts import resolve_duplicates
from kattr.curation.duplicates import duplicate_groups
from kattr.curation.hashing import inspect_images
from kattr.curation.image_checks import ImageRecord
from kattr.curation.label_values import clean_labels, label_columns
from kattr.curation.output import discard_output, finish_output, start_output
from kattr.curation.rare_values import check_rare_fallback, prune_rare_values
from kattr.curation.report import write_before_after_stats, write_reports
from kattr.curation.splitting import label_indicators, share_differences, stratified_split
from kattr.curation.summary import build_summary
from kattr.curation.tables import duplicates_table, removed_table, thumbnail_array
from kattr.labels import image_paths, read_manifest, write_manifest

__all__ = ["CurationResult", "curate"]


@dataclass
class CurationResult:
    """The numbers of a curation run (all of them, with details, are in `report.json`).

    Attributes:
        output_dir: the written folder.
        input_rows: rows of the input manifest.
        kept_rows: rows of the curated manifest.
        removed: reason -> removed rows; with `kept_rows` it adds up to `input_rows`.
        invalid_images: rows removed for an invalid image.
        unknown_cells: cells holding a value outside the taxonomy.
        duplicate_groups: groups of exact or near duplicates.
        exact_duplicate_groups: groups whose members all have the same content.
        near_duplicate_groups: groups with at least one near (not exact) duplicate.
        conflict_groups: groups whose members disagree on a label.
        merged_cells: cell values replaced by a taxonomy merge.
        rare_values: values with fewer than `min_count` examples.
        rare_cells_changed: cells changed by the rare-value policy.
        split_sizes: split -> rows.
        split_max_share_difference: split -> largest |value share in split - share in whole|.
        images_per_second: hashing throughput.
    """

    output_dir: Path
    input_rows: int
    kept_rows: int
    removed: dict[str, int]
    invalid_images: int
    unknown_cells: int
    duplicate_groups: int
    exact_duplicate_groups: int
    near_duplicate_groups: int
    conflict_groups: int
    merged_cells: int
    rare_values: int
    rare_cells_changed: int
    split_sizes: dict[str, int]
    split_max_share_difference: dict[str, float]
    images_per_second: float


def _log(message: str, enabled: bool) -> None:
    if enabled:
        print(f"curate: {message}", file=sys.stderr, flush=True)


def _inspect(
    config: Config, frame: pd.DataFrame, rows: list[int], progress: bool
) -> tuple[dict[int, ImageRecord], dict]:
    """Checks and hashes the images of `rows`; returns records by row and timing numbers."""
    paths = image_paths(frame, config)
    workers = config.curation.workers or available_cores()
    start = time.perf_counter()
    records = inspect_images(
        [paths[row] for row in rows],
        config.curation.min_side,
        config.curation.max_aspect_ratio,
        workers=workers,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    timing = {
        "images": len(rows),
        "seconds": round(seconds, 3),
        "images_per_second": round(len(rows) / seconds, 1) if seconds > 0 else 0.0,
        "workers": workers,
    }
    return dict(zip(rows, records, strict=True)), timing


def _group_rows(
    records: dict[int, ImageRecord], rows: int, max_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Duplicate group per row (-1: none or invalid image) and the row kept per group."""
    valid = np.array([row for row, record in records.items() if record.reason is None], dtype=int)
    found = duplicate_groups(
        [records[row].content_hash for row in valid],
        [records[row].perceptual_hash for row in valid],
        thumbnail_array(records, valid),
        np.array([records[row].width * records[row].height for row in valid]),
        max_distance,
    )
    groups = np.full(rows, -1, dtype=np.int64)
    groups[valid] = found.groups
    return groups, valid[found.kept]


def _result(summary: dict, output_dir: Path) -> CurationResult:
    duplicates = summary["duplicates"]
    return CurationResult(
        output_dir=output_dir,
        input_rows=summary["rows"]["input"],
        kept_rows=summary["rows"]["kept"],
        removed=summary["rows"]["removed_by_reason"],
        invalid_images=summary["invalid_images"]["count"],
        unknown_cells=summary["unknown_values"]["cells"],
        duplicate_groups=duplicates["groups"],
        exact_duplicate_groups=duplicates["exact_groups"],
        near_duplicate_groups=duplicates["near_groups"],
        conflict_groups=duplicates["conflict_groups"],
        merged_cells=summary["merges"]["cells"],
        rare_values=len(summary["rare_values"]["values"]),
        rare_cells_changed=summary["rare_values"]["cells_changed"],
        split_sizes={name: s["rows"] for name, s in summary["splits"]["sizes"].items()},
        split_max_share_difference={
            name: s["max_difference"] for name, s in summary["splits"]["sizes"].items()
        },
        images_per_second=summary["hashing"]["images_per_second"],
    )


def _curated_config(config: Config, output_dir: Path) -> Config:
    curated = copy.deepcopy(config)
    curated.data.manifest = str(output_dir / "labels.csv")
    curated.data.image_root = str(config.image_root.resolve())
    return curated


def curate(
    config: Config,
    output_dir: str | Path,
    progress: bool = True,
    overwrite: bool = False,
) -> CurationResult:
    """Curates the manifest of `config` into `output_dir` (see the module docstring).

    Args:
        config: the experiment config; its `curation` section and `data.splits` are used.
        output_dir: the folder to create; must not exist or be empty unless `overwrite`.
        progress: print stages and a hashing progress bar to stderr.
        overwrite: replace an existing non-empty `output_dir`.

    Returns:
        The counts of the run.

    Raises:
        CurationError: unusable settings or output folder.
        LabelError: manifest problems (absent columns; unknown values with `on_unknown: error`).
    """
    output_dir = Path(output_dir).resolve()
    taxonomy = config.taxonomy
    check_rare_fallback(taxonomy, config.curation.rare_fallback)
    staging = start_output(
        output_dir, overwrite, inputs=[config.manifest_path, config.image_root]
    )
    try:
        _log(f"reading {config.manifest_path}", progress)
        frame = read_manifest(config.manifest_path)
        cleaned = clean_labels(frame, taxonomy, config.data.on_unknown)
        removed: dict[int, tuple[str, str]] = {}
        dropped = set(cleaned.dropped_rows)
        for row, column, value in cleaned.unknown:
            if row in dropped and row not in removed:
                removed[row] = ("unknown_value", f"column {column!r}: {value!r} not in taxonomy")
        rows = [row for row in range(len(frame)) if row not in removed]
        records, timing = _inspect(config, frame, rows, progress)
        for row, record in records.items():
            if record.reason is not None:
                removed[row] = (record.reason, record.detail)

        _log("grouping duplicates", progress)
        groups, kept_rows = _group_rows(
            records, len(frame), config.curation.near_duplicate_distance
        )
        resolution = resolve_duplicates(
            cleaned.frame, groups, kept_rows, label_columns(taxonomy), taxonomy.separator,
            config.curation.conflict_policy,
        )
        removed.update(resolution.removed)
        kept = [row for row in range(len(frame)) if row not in removed]
        pruned = prune_rare_values(
            resolution.frame.iloc[kept].reset_index(drop=True), taxonomy,
            config.curation.min_count, config.curation.rare_policy,
            config.curation.rare_fallback,
        )

        _log("splitting", progress)
        split_config = config.data.splits
        indicators = label_indicators(pruned.frame, taxonomy)
        assignment = stratified_split(
            indicators.matrix, split_config.val_fraction, split_config.test_fraction,
            split_config.seed,
        )
        curated = pruned.frame.copy()
        curated[split_config.column] = assignment
        split_of_row = dict(zip(kept, assignment, strict=True))

        _log(f"writing {output_dir}", progress)
        write_manifest(curated, staging / "labels.csv")
        write_manifest(removed_table(frame, removed), staging / "removed.csv")
        write_manifest(
            duplicates_table(resolution, frame, records, split_of_row, config.data.image_column),
            staging / "duplicates.csv",
        )
        save_config(_curated_config(config, output_dir), staging / "config.yaml")
        label_states = write_before_after_stats(frame, curated, taxonomy, staging / "stats")
        summary = build_summary(
            config, frame, cleaned, records, resolution, pruned, removed,
            share_differences(indicators, assignment), timing, label_states,
        )
        write_reports(summary, staging)
        finish_output(staging, output_dir)
    except BaseException:
        discard_output(staging)
        raise
    return _result(summary, output_dir)
