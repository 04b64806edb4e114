"""Writing predictions as JSON Lines or CSV.

JSON Lines: one object per image, ``{"image": ..., "attributes": {attr: {"labels": [...],
"scores": {...}}}}`` or ``{"image": ..., "error": ...}``. CSV: one row per image with columns
`image`, `error`, then per attribute `<attr>` (labels joined by "|") and `<attr>:<value>` scores.

Example:
    >>> write_predictions(records, "predictions.csv")  # format from the suffix
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

__all__ = ["LABEL_SEPARATOR", "format_predictions", "write_predictions"]

LABEL_SEPARATOR = "|"
OutputFormat = Literal["jsonl", "csv"]


def _score_items(scores: dict | list) -> list[tuple[str, float]]:
    if isinstance(scores, dict):
        return list(scores.items())
    return [(str(index), score) for index, score in enumerate(scores)]


def _csv_text(records: Sequence[dict]) -> str:
    columns = ["image", "error"]
    for record in records:
        for attribute, result in record.get("attributes", {}).items():
            for column in [attribute] + [
                f"{attribute}:{value}" for value, _ in _score_items(result["scores"])
            ]:
                if column not in columns:
                    columns.append(column)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {"image": record["image"], "error": record.get("error", "")}
        for attribute, result in record.get("attributes", {}).items():
            row[attribute] = LABEL_SEPARATOR.join(result["labels"])
            for value, score in _score_items(result["scores"]):
                row[f"{attribute}:{value}"] = score
        writer.writerow(row)
    return buffer.getvalue()


def format_predictions(records: Sequence[dict], output_format: OutputFormat) -> str:
    """The text of `records` as JSON Lines or CSV."""
    if output_format == "jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if output_format == "csv":
        return _csv_text(records)
    raise ValueError(f"output format must be 'jsonl' or 'csv'. Received: {output_format!r}")


def write_predictions(
    records: Sequence[dict],
    path: str | os.PathLike | None = None,
    output_format: OutputFormat | None = None,
) -> None:
    """Writes `records` to `path` atomically, or to stdout when `path` is None.

    Args:
        records: from `PredictClient.predict_files`.
        path: the output file; its suffix (.csv, else JSON Lines) sets the default format.
        output_format: "jsonl" or "csv"; overrides the suffix.
    """
    if output_format is None:
        output_format = "csv" if path is not None and Path(path).suffix.lower() == ".csv" else (
            "jsonl"
        )
    text = format_predictions(records, output_format)
    if path is None:
        sys.stdout.write(text)
        return
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
