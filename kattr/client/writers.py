"""Writing predictions as JSON Lines or CSV.

JSON Lines: one object per image, ``{"image": ..., "attributes": {attr: {"labels": [...],
"scores": {...}}}}`` or ``{"image": ..., "error": ...}``. CSV: one row per image with columns
`image`, `error`, then per attribute `<attr>` (labels joined by "|") and `<attr>:<value>` scores.

`PredictionWriter` streams: each `write` (one batch) is written and flushed at once, so a run
that stops half-way leaves every finished row in the file. `write_predictions` writes a whole
list atomically.

Example:
    >>> write_predictions(records, "predictions.csv")  # format from the suffix
    >>> with PredictionWriter("predictions.jsonl") as writer:
    ...     for batch in client.predict_file_batches(paths):
    ...         writer.write(batch)
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TextIO

from kattr._atomic import write_text_atomic

__all__ = ["LABEL_SEPARATOR", "PredictionWriter", "format_predictions", "write_predictions"]

LABEL_SEPARATOR = "|"
OutputFormat = Literal["jsonl", "csv"]


def _score_items(scores: dict | list) -> list[tuple[str, float]]:
    if isinstance(scores, dict):
        return list(scores.items())
    return [(str(index), score) for index, score in enumerate(scores)]


def _csv_columns(records: Sequence[dict]) -> list[str]:
    columns = ["image", "error"]
    for record in records:
        for attribute, result in record.get("attributes", {}).items():
            for column in [attribute] + [
                f"{attribute}:{value}" for value, _ in _score_items(result["scores"])
            ]:
                if column not in columns:
                    columns.append(column)
    return columns


def _csv_row(record: dict) -> dict:
    row = {"image": record["image"], "error": record.get("error", "")}
    for attribute, result in record.get("attributes", {}).items():
        row[attribute] = LABEL_SEPARATOR.join(result["labels"])
        for value, score in _score_items(result["scores"]):
            row[f"{attribute}:{value}"] = score
    return row


def _csv_text(records: Sequence[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_csv_columns(records), lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_row(record) for record in records)
    return buffer.getvalue()


def _output_format(
    path: str | os.PathLike | None, output_format: OutputFormat | None
) -> OutputFormat:
    if output_format is None:
        suffix = Path(path).suffix.lower() if path is not None else ""
        return "csv" if suffix == ".csv" else "jsonl"
    if output_format not in ("jsonl", "csv"):
        raise ValueError(f"output format must be 'jsonl' or 'csv'. Received: {output_format!r}")
    return output_format


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
    text = format_predictions(records, _output_format(path, output_format))
    if path is None:
        sys.stdout.write(text)
        return
    write_text_atomic(path, text)


class PredictionWriter:
    """Writes prediction records as they arrive: each `write` is written and flushed at once.

    The file (or stdout) grows batch by batch, so a run that fails half-way leaves every
    finished row in it. CSV columns come from the first record with attributes (one model gives
    every image the same columns); records before it, failures only, wait for it, or for
    `close` when no image succeeds.

    Args:
        path: the output file, or None for stdout; its suffix (.csv, else JSON Lines) sets the
            default format.
        output_format: "jsonl" or "csv"; overrides the suffix.

    Example:
        >>> with PredictionWriter("out.csv") as writer:
        ...     writer.write([{"image": "a.jpg", "attributes": {...}}])
        >>> writer.written
        1
    """

    def __init__(
        self, path: str | os.PathLike | None = None, output_format: OutputFormat | None = None
    ):
        self.path = None if path is None else Path(path)
        self.output_format = _output_format(path, output_format)
        self.written = 0
        self._pending: list[dict] = []
        self._csv: csv.DictWriter | None = None
        self._stream: TextIO | None = None

    def __enter__(self) -> PredictionWriter:
        if self.path is None:
            self._stream = sys.stdout
        else:
            try:
                self._stream = self.path.open("w", encoding="utf-8", newline="")
            except OSError as error:
                raise ValueError(
                    f"--output {self.path}: cannot write: {error.strerror or error}"
                ) from error
        return self

    def write(self, records: Sequence[dict]) -> None:
        """Writes one batch of records and flushes it."""
        if self._stream is None:
            raise ValueError("PredictionWriter.write outside its `with` block")
        if self.output_format == "jsonl":
            for record in records:
                self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.written += len(records)
        else:
            self._pending.extend(records)
            if self._csv is None and any("attributes" in r for r in self._pending):
                self._start_csv()
            if self._csv is not None:
                self._write_pending()
        self._stream.flush()

    def _start_csv(self) -> None:
        self._csv = csv.DictWriter(
            self._stream, fieldnames=_csv_columns(self._pending), lineterminator="\n"
        )
        self._csv.writeheader()

    def _write_pending(self) -> None:
        self._csv.writerows(_csv_row(record) for record in self._pending)
        self.written += len(self._pending)
        self._pending = []

    def close(self) -> None:
        """Writes the records still waiting for CSV columns, then closes the file."""
        if self._stream is None:
            return
        if self.output_format == "csv" and self._csv is None:
            self._start_csv()  # failures only, or nothing: still a header
        if self._pending:
            self._write_pending()
        self._stream.flush()
        if self._stream is not sys.stdout:
            self._stream.close()
        self._stream = None

    def __exit__(self, *exc_info) -> None:
        self.close()
