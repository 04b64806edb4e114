"""Catalog enrichment: fill blank attribute cells with confident predictions, with provenance.

For every blank cell of an attribute that applies to the row's category, the model's scores go
through the one post-processing (`kattr.postprocess.decide`: calibrated thresholds, exclusivity)
and, when `min_score` is given, must also reach it. Cells with a decision are filled; the others
stay blank. Two columns per attribute record where each cell comes from:

- `<attr>_source`: `catalog` (the seller's value), `model` (filled here), blank where empty;
- `<attr>_score`: the score of the filled value (the lowest one when several are filled).

The product type (`taxonomy.category_output`, e.g. `product_type`) is one of these attributes:
its cells are the category column's, so a blank category is filled from the prediction, with
`product_type_source` / `product_type_score`. Applicability follows the catalog's category
where the row has a known one, else the predicted product type (its highest score, even when
too low to fill the cell); two columns say which:

- `applicability_category`: the category `applies_to` was checked against ("" if unknown);
- `applicability_source`: `catalog`, `model` (the predicted product type) or "".

Example:
    >>> with Scorer.from_run("runs/shirts") as scorer:
    ...     result = enrich_manifest("catalog.csv", "enriched.csv", scorer, min_score=0.8)
    >>> result.summary["colour"]
    {'blank': 57, 'filled': 49, 'left_blank': 8, 'failed_images': 0}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kattr.apps._cells import (
    applicability_categories,
    applicable_rows,
    blank_cells,
    check_columns,
    check_min_score,
    check_rows,
    predicted_decisions,
)
from kattr.apps.scoring import CatalogScores, ImageFailure, Scorer, manifest_images
from kattr.labels import write_manifest
from kattr.run_dir import write_json

__all__ = [
    "CATALOG",
    "MODEL",
    "EnrichResult",
    "enrich",
    "enrich_manifest",
    "summary_path",
    "summary_table",
]

CATALOG = "catalog"
MODEL = "model"


@dataclass
class EnrichResult:
    """An enriched manifest and what was filled.

    Args:
        frame: the manifest with filled cells and `<attr>_source` / `<attr>_score` columns.
        summary: attribute -> counts: `blank` (blank cells where the attribute applies),
            `filled`, `left_blank`, and `failed_images` (blank cells whose image failed).
        failures: the images that could not be scored.
        output: the file written (None when only computed).
        applicability: rows whose applicability followed the `catalog` category, the `model`'s
            predicted product type, or neither (`unknown`).
        model_version: the served model version that answered every row (server sources;
            None for the others).
    """

    frame: pd.DataFrame
    summary: dict[str, dict[str, int]]
    failures: list[ImageFailure]
    output: Path | None = None
    applicability: dict[str, int] = field(default_factory=dict)
    model_version: int | None = None


def enrich(
    frame: pd.DataFrame, scores: CatalogScores, min_score: float | None = None
) -> EnrichResult:
    """Fills the blank, applicable cells of `frame` where the model decides values.

    Args:
        frame: the manifest, row `i` scored by `scores` row `i`.
        scores: from `Scorer.score_files` on the manifest's images.
        min_score: also require each filled value's score to reach this (in (0, 1]).
    """
    check_min_score(min_score)
    check_rows(frame, scores)
    taxonomy = scores.taxonomy
    check_columns(frame, taxonomy)
    enriched = frame.reset_index(drop=True).copy()
    scored = scores.scored
    # From the cells as given, before the product type fills any category.
    category_index, category_source = applicability_categories(enriched, taxonomy, scores)
    product_type = taxonomy.category_attribute
    if product_type is not None and f"{product_type.name}_source" in enriched.columns:
        # A category filled by an earlier enrichment is still the model's.
        filled_before = enriched[f"{product_type.name}_source"].fillna("").to_numpy() == MODEL
        category_source[filled_before & (category_source == CATALOG)] = MODEL
    summary = {}
    for attribute in taxonomy.attributes:
        column = attribute.source_column
        cells = enriched[column].astype(object).to_numpy(copy=True)
        blank = blank_cells(enriched, attribute)
        candidates = blank & applicable_rows(enriched, taxonomy, attribute, category_index)
        values = np.asarray(scores.scores[attribute.name], np.float32)
        decisions = predicted_decisions(
            values, scores.thresholds[attribute.name], attribute, min_score
        )
        fill = candidates & scored & decisions.any(axis=1)
        previous = enriched.get(f"{attribute.name}_source")
        previous_score = enriched.get(f"{attribute.name}_score")
        source = np.where(blank, "", CATALOG).astype(object)
        filled_score = np.full(len(enriched), "", dtype=object)
        if previous is not None:  # an enriched manifest enriched again keeps its provenance
            kept = ~blank & (previous.fillna("").to_numpy() == MODEL)
            source[kept] = MODEL
            if previous_score is not None:
                filled_score[kept] = previous_score.fillna("").to_numpy()[kept]
        for i in np.flatnonzero(fill):
            chosen = np.flatnonzero(decisions[i])
            cells[i] = taxonomy.separator.join(attribute.values[j] for j in chosen)
            source[i] = MODEL
            filled_score[i] = f"{float(values[i, chosen].min()):.4f}"
        enriched[column] = cells
        enriched[f"{attribute.name}_source"] = source
        enriched[f"{attribute.name}_score"] = filled_score
        summary[attribute.name] = {
            "blank": int(candidates.sum()),
            "filled": int(fill.sum()),
            "left_blank": int(candidates.sum() - fill.sum()),
            "failed_images": int((candidates & ~scored).sum()),
        }
    known = category_index >= 0
    enriched["applicability_category"] = np.where(
        known, np.array(taxonomy.categories + [""], dtype=object)[category_index], ""
    )
    enriched["applicability_source"] = category_source
    applicability = {
        CATALOG: int((category_source == CATALOG).sum()),
        MODEL: int((category_source == MODEL).sum()),
        "unknown": int((~known).sum()),
    }
    return EnrichResult(enriched, summary, list(scores.failures), applicability=applicability)


def enrich_manifest(
    manifest: str | os.PathLike,
    output: str | os.PathLike,
    scorer: Scorer,
    min_score: float | None = None,
    image_root: str | os.PathLike | None = None,
    image_column: str = "image",
    batch_size: int = 32,
) -> EnrichResult:
    """Scores a manifest's images, enriches it and writes `output` and its summary.

    The summary goes beside the output as `<output stem>.summary.json`, with the source and,
    for a server, the `model_version` that answered every row. Both are written atomically;
    the input is never overwritten.

    Args:
        manifest: the CSV/Parquet manifest.
        output: the enriched manifest (CSV or Parquet, from the suffix); not the input.
        scorer: the model source.
        min_score: also require each filled value's score to reach this.
        image_root: folder of relative image paths (default: the manifest's folder).
        image_column: the manifest's image column.
        batch_size: images per forward pass or request.
    """
    manifest, output = Path(manifest), Path(output)
    if output.resolve() == manifest.resolve():
        raise ValueError(
            f"--output {output}: is the input manifest; enrichment never overwrites its input, "
            "choose another file"
        )
    check_min_score(min_score)
    frame, paths = manifest_images(manifest, image_root, image_column)
    check_columns(frame, scorer.taxonomy, str(manifest))
    scores = scorer.score_files(paths, batch_size=batch_size)
    result = enrich(frame, scores, min_score)
    result.model_version = scores.source.get("version")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(result.frame, output)
    write_json(
        {
            "manifest": str(manifest), "output": str(output), "source": scores.source,
            "model_version": result.model_version,
            "min_score": min_score, "attributes": result.summary,
            "applicability": result.applicability,
            "failed_images": len(scores.failures), "failures": scores.failure_lines(limit=1000),
        },
        summary_path(output),
    )
    result.output = output
    return result


def summary_path(output: str | os.PathLike) -> Path:
    """Where the summary of an enriched manifest goes: `<stem>.summary.json` beside it."""
    output = Path(output)
    return output.with_name(f"{output.stem}.summary.json")


def summary_table(summary: dict[str, dict[str, int]]) -> str:
    """The per-attribute summary as a fixed-width text table."""
    lines = [f"{'attribute':<16}{'blank':>8}{'filled':>8}{'left blank':>12}{'failed':>8}"]
    for name, counts in summary.items():
        lines.append(
            f"{name:<16}{counts['blank']:>8}{counts['filled']:>8}{counts['left_blank']:>12}"
            f"{counts['failed_images']:>8}"
        )
    return "\n".join(lines)
