"""The curation report: `report.json` (every number) and `report.md` (the same, for people),
plus before/after label statistics in `stats/` (tables and PNG charts from `kattr.stats`).

Example:
    >>> states = write_before_after_stats(raw_frame, curated_frame, taxonomy, "out/stats")
    >>> write_reports(summary, "out")  # summary: the JSON-ready dict built by `curate`
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from kattr._atomic import write_text_atomic
from kattr.config import TaxonomyConfig
from kattr.stats import (
    attribute_state_counts,
    compute_attribute_stats,
    format_stats,
    plot_attribute_stats,
)

__all__ = ["render_markdown", "write_before_after_stats", "write_reports"]


def write_before_after_stats(
    before: pd.DataFrame,
    after: pd.DataFrame,
    taxonomy: TaxonomyConfig,
    output_dir: str | os.PathLike,
) -> list[dict]:
    """Writes `before.txt`, `after.txt` and one before/after PNG per attribute.

    Returns:
        Per attribute: labelled / missing / not-applicable rows before and after.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    values = {"before": compute_attribute_stats(before, taxonomy)}
    values["after"] = compute_attribute_stats(after, taxonomy)
    states = {"before": attribute_state_counts(before, taxonomy)}
    states["after"] = attribute_state_counts(after, taxonomy)
    for name in values:
        text = format_stats(values[name], states[name]) + "\n"
        write_text_atomic(output_dir / f"{name}.txt", text)
    plot_attribute_stats(values, output_dir, states=states)
    merged = states["before"].merge(states["after"], on="attribute", suffixes=("_before", "_after"))
    return merged.to_dict(orient="records")


def _table(headers: list[str], rows: list[list]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    # Multi-valued labels hold the separator "|", which would end a Markdown cell.
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return lines + [""]


def _listed(rows: list, total: int) -> list[str]:
    return [f"({total - len(rows)} more in the CSV)", ""] if total > len(rows) else []


def render_markdown(summary: dict) -> str:
    """The Markdown report of a curation summary (see `curate`)."""
    rows = summary["rows"]
    lines = [
        "# Curation report",
        "",
        f"Manifest `{summary['input']['manifest']}`, images under "
        f"`{summary['input']['image_root']}`.",
        "",
        f"**{rows['input']:,} rows in, {rows['kept']:,} kept, {rows['removed']:,} removed** "
        "(every removed row is in `removed.csv` with its reason).",
        "",
    ]
    lines += _table(
        ["reason", "rows"], [[r, f"{n:,}"] for r, n in rows["removed_by_reason"].items()]
    )
    unknown = summary["unknown_values"]
    lines += ["## Values outside the taxonomy", "",
              f"{unknown['cells']:,} cell(s), handled by `data.on_unknown: {unknown['policy']}`.",
              ""]
    lines += _table(["column", "cells"], [[c, n] for c, n in unknown["by_column"].items()])

    invalid = summary["invalid_images"]
    lines += ["## Invalid images", "", f"{invalid['count']:,} image(s) removed.", ""]
    lines += _table(["reason", "images"], [[r, n] for r, n in invalid["by_reason"].items()])
    lines += _table(["row", "image", "reason", "detail"],
                    [[e["row"], e["image"], e["reason"], e["detail"]] for e in invalid["examples"]])
    lines += _listed(invalid["examples"], invalid["count"])

    duplicates = summary["duplicates"]
    lines += [
        "## Duplicates", "",
        f"{duplicates['groups']:,} group(s) ({duplicates['exact_groups']:,} exact, "
        f"{duplicates['near_groups']:,} with near duplicates: perceptual-hash distance <= "
        f"{duplicates['max_distance']} and thumbnails within "
        f"{duplicates['max_pixel_difference']:g} grey levels once brightness and contrast are "
        f"matched), {duplicates['rows_in_groups']:,} rows, largest group "
        f"{duplicates['largest_group']} rows. One image kept per group; "
        f"{duplicates['removed']:,} row(s) removed as duplicates. Groups are in `duplicates.csv`.",
        "",
        f"{duplicates['conflict_groups']:,} group(s) disagree on labels "
        f"(policy `{duplicates['conflict_policy']}`); {duplicates['filled_cells']:,} blank "
        "cell(s) of kept images filled with the label their duplicates agree on.",
        "",
    ]
    lines += _table(["column", "groups in conflict"],
                    [[c, n] for c, n in duplicates["conflicts_by_column"].items()])
    examples = duplicates["conflict_examples"]
    lines += _table(
        ["group", "images", "labels given"],
        [[e["group"], ", ".join(e["images"]),
          "; ".join(f"{c}: {' / '.join(v)}" for c, v in e["labels"].items())] for e in examples],
    )
    lines += _listed(examples, duplicates["conflict_groups"])

    merges = summary["merges"]
    lines += ["## Taxonomy merges", "", f"{merges['cells']:,} cell value(s) merged.", ""]
    lines += _table(["column", "from", "to", "cells"],
                    [[m["column"], m["source"], m["target"], m["cells"]] for m in merges["values"]])

    rare = summary["rare_values"]
    lines += [
        "## Rare values", "",
        f"{len(rare['values'])} value(s) with fewer than {rare['min_count']} examples "
        f"(policy `{rare['policy']}`); {rare['cells_changed']:,} cell(s) changed.", "",
    ]
    lines += _table(["attribute", "value", "examples", "action", "cells changed"],
                    [[r["attribute"], r["value"], r["count"], r["action"], r["cells"]]
                     for r in rare["values"]])

    splits = summary["splits"]
    lines += [
        "## Splits", "",
        f"Iterative stratification on the category and every attribute value (seed "
        f"{splits['seed']}), column `{splits['column']}`"
        + (" (the manifest's own split column was replaced)" if splits["replaced_column"] else "")
        + ". Share difference: per value, |share in the split - share in the whole| among rows "
        "labelled for its attribute.", "",
    ]
    lines += _table(
        ["split", "rows", "max share difference", "mean share difference", "worst value"],
        [[name, f"{s['rows']:,}", f"{s['max_difference']:.4f}", f"{s['mean_difference']:.4f}",
          f"{s['worst_attribute']}={s['worst_value']}"] for name, s in splits["sizes"].items()],
    )

    lines += ["## Label states before and after", "",
              "Value counts are in `stats/before.txt` and `stats/after.txt`, charts in `stats/`.",
              ""]
    lines += _table(
        ["attribute", "labelled", "missing", "not applicable"],
        [[s["attribute"]]
         + [f"{s[f'{k}_before']:,} -> {s[f'{k}_after']:,}"
            for k in ("labelled", "missing", "not_applicable")]
         for s in summary["label_states"]],
    )
    hashing = summary["hashing"]
    lines += [
        f"Hashing: {hashing['images']:,} images in {hashing['seconds']:.1f} s "
        f"({hashing['images_per_second']:,.0f} images/s, {hashing['workers']} worker(s)).",
        "",
    ]
    return "\n".join(lines)


def write_reports(summary: dict, output_dir: str | os.PathLike) -> None:
    """Writes `report.json` and `report.md` into `output_dir`."""
    output_dir = Path(output_dir)
    write_text_atomic(output_dir / "report.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(output_dir / "report.md", render_markdown(summary))
