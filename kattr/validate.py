"""Checks a manifest against its taxonomy and the image files on disk, without changing anything.

`validate_catalog` reports every problem it finds, grouped by kind. Errors stop training or make
it silently wrong (missing columns or files, images the pipeline cannot decode, values outside
the taxonomy, bad split names); warnings deserve a look (the same image on several rows, a blank
category, a value on a row where the attribute does not apply, which training ignores, several
values in one cell of an exclusive attribute, which training treats as missing); notes
list taxonomy entries no row uses (often a typo in the config). The report also counts the
blank cells of each label column: missing labels are expected, not problems.

Images are checked on a thread pool: Pillow releases the GIL while decoding pixels, which is
where large photos spend their time (on 60x80 thumbnails the Python header parsing dominates,
about 0.4 ms an image). Each worker opens, fully decodes and drops one image at a time, so
memory stays flat on large catalogs.

Example:
    >>> report = validate_catalog(load_config("demo/config.yaml"))
    >>> report.ok
    True
    >>> print(report.format())  # summary, then the first rows of each problem kind
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from kattr._cores import available_cores
from kattr._image_formats import TRAINING_FORMATS, is_training_format
from kattr.catalog import SPLITS
from kattr.config import Config, TaxonomyConfig
from kattr.labels import category_of, encode_labels, image_paths, is_blank, read_manifest

__all__ = ["PROBLEM_KINDS", "Problem", "ValidationReport", "check_image", "validate_catalog"]

# kind -> (severity, what it means); the order is the order of the report.
PROBLEM_KINDS: dict[str, tuple[str, str]] = {
    "missing_column": ("error", "a column the config expects is not in the manifest"),
    "missing_file": ("error", "the image path is blank or no file exists there"),
    "unreadable_image": (
        "error", "the file cannot be decoded as a JPEG (MPO included)/PNG/BMP/GIF image"
    ),
    "unknown_value": ("error", "a value that is not in the taxonomy (after merges)"),
    "invalid_split": ("error", f"the split column holds something other than {list(SPLITS)}"),
    "duplicate_image": ("warning", "the same image file is listed on several rows"),
    "blank_category": (
        "warning",
        "no category, so applies_to cannot be checked (the product type label is missing)",
    ),
    "not_applicable_value": (
        "warning", "a value where the attribute does not apply; training treats it as negative"
    ),
    "conflicting_values": (
        "warning",
        "several values in one cell of an exclusive attribute; training treats it as missing",
    ),
    "unused_value": ("note", "a category or value of the taxonomy that no row uses"),
}


@dataclass(frozen=True)
class Problem:
    """One finding.

    Attributes:
        row: 1-based data row (the first row after the header is 1); None for the whole file.
        column: the manifest column concerned, if any.
        detail: what is wrong, naming the offending value or file.
    """

    row: int | None
    column: str | None
    detail: str


@dataclass
class ValidationReport:
    """Problems of one manifest grouped by kind (see `PROBLEM_KINDS`).

    Attributes:
        manifest: the manifest that was checked.
        rows: its number of data rows.
        images_checked: distinct existing image files decoded, the broken ones included (0 when
            decoding was skipped).
        blank_cells: label column -> number of blank cells (missing labels, or no category).
        problems: kind -> problems, in row order.
        max_rows: rows shown per kind by `format`.
    """

    manifest: Path
    rows: int
    images_checked: int = 0
    blank_cells: dict[str, int] = field(default_factory=dict)
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    max_rows: int = 10

    @property
    def counts(self) -> dict[str, int]:
        """Number of problems per kind that occurred."""
        return {kind: len(found) for kind, found in self.problems.items() if found}

    def count(self, severity: str) -> int:
        """Number of problems of a severity (`error`, `warning` or `note`)."""
        return sum(n for kind, n in self.counts.items() if PROBLEM_KINDS[kind][0] == severity)

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings allowed)."""
        return self.count("error") == 0

    def format(self, max_rows: int | None = None) -> str:
        """A summary line per kind, then its first `max_rows` problems."""
        shown = self.max_rows if max_rows is None else max_rows
        verdict = "OK" if self.ok else "FAILED"
        lines = [
            f"{self.manifest}: {self.rows} rows, {self.images_checked} image files decoded",
            f"{verdict}: {self.count('error')} error(s), {self.count('warning')} warning(s), "
            f"{self.count('note')} note(s)",
        ]
        if self.blank_cells:
            blanks = ", ".join(f"{column} {n}" for column, n in self.blank_cells.items())
            lines.append(f"blank cells per label column: {blanks}")
        for kind, (severity, meaning) in PROBLEM_KINDS.items():
            found = self.problems.get(kind, [])
            if not found:
                continue
            lines.append(f"[{severity}] {kind}: {len(found)} ({meaning})")
            for problem in found[:shown]:
                where = "file" if problem.row is None else f"row {problem.row}"
                if problem.column is not None:
                    where += f", column {problem.column!r}"
                lines.append(f"    {where}: {problem.detail}")
            if len(found) > shown:
                lines.append(f"    ... and {len(found) - shown} more")
        return "\n".join(lines)


def check_image(path: str | os.PathLike) -> str | None:
    """Why an image file cannot be used for training, or None when it decodes fully.

    Example:
        >>> check_image("missing.jpg")
        'no file at missing.jpg'
    """
    found = _inspect(Path(path), decode=True)
    return None if found is None else found[1]


def _inspect(path: Path, decode: bool) -> tuple[str, str] | None:
    """(problem kind, detail) for one file, or None when it is usable."""
    if not path.is_file():
        return "missing_file", f"no file at {path}"
    if not decode:
        return None
    try:
        with Image.open(path) as image:
            image_format = image.format
            image.load()  # decodes every pixel, so truncated or corrupt data is caught
    except Exception as error:  # Pillow's format plugins raise many types on malformed data
        return "unreadable_image", f"cannot decode {path}: {error}"
    if not is_training_format(image_format):  # the rule curation applies too
        return "unreadable_image", (
            f"{path}: {image_format} images are not readable by training; "
            f"expected one of {list(TRAINING_FORMATS)}"
        )
    return None


def validate_catalog(
    config: Config,
    check_images: bool = True,
    max_rows: int = 10,
    workers: int | None = None,
    manifest: str | os.PathLike | None = None,
) -> ValidationReport:
    """Checks the config's manifest (or `manifest`) against its taxonomy and the files on disk.

    Args:
        config: the experiment config (taxonomy, image column and root, split column).
        check_images: decode every image; False only checks that the files exist.
        max_rows: problems shown per kind by `ValidationReport.format`.
        workers: threads checking images; None uses every available core.
        manifest: another manifest following the same taxonomy.

    Returns:
        The report; nothing is written.
    """
    path = Path(manifest) if manifest is not None else config.manifest_path
    frame = read_manifest(path)
    report = ValidationReport(
        manifest=Path(os.path.normpath(path)), rows=len(frame), max_rows=max_rows
    )
    problems = {kind: [] for kind in PROBLEM_KINDS}
    taxonomy = config.taxonomy
    columns = [attribute.source_column for attribute in taxonomy.attributes]
    expected = {config.data.image_column: "image column (data.image_column)"}
    expected.setdefault(taxonomy.category_column, "category column (taxonomy.category_column)")
    for attribute in taxonomy.attributes:
        expected.setdefault(attribute.source_column, f"column of attribute {attribute.name!r}")
    for column, role in expected.items():
        if column not in frame.columns:
            problems["missing_column"].append(
                Problem(None, column, f"{role} is absent; columns: {list(frame.columns)}")
            )

    if config.data.image_column in frame.columns:
        report.images_checked = _check_files(frame, config, check_images, workers, problems)
    _check_labels(frame, taxonomy, problems)
    report.blank_cells = {
        column: int(frame[column].map(is_blank).sum())
        for column in dict.fromkeys([taxonomy.category_column] + columns)
        if column in frame.columns
    }
    if config.data.splits.column in frame.columns:
        for i, value in enumerate(frame[config.data.splits.column]):
            if is_blank(value) or str(value).strip().lower() not in SPLITS:
                detail = f"expected one of {list(SPLITS)}; received {value!r}"
                problems["invalid_split"].append(Problem(i + 1, config.data.splits.column, detail))
    report.problems = {
        kind: sorted(found, key=lambda problem: problem.row or 0)  # file-level (None) first
        for kind, found in problems.items() if found
    }
    return report


def _check_files(
    frame: pd.DataFrame,
    config: Config,
    check_images: bool,
    workers: int | None,
    problems: dict[str, list[Problem]],
) -> int:
    """Records missing, unreadable and duplicate images; returns the number of files decoded."""
    column = config.data.image_column
    blank = frame[column].map(is_blank).to_numpy()
    for i in np.flatnonzero(blank):
        problems["missing_file"].append(Problem(int(i) + 1, column, "blank image path"))
    rows_of: dict[Path, list[int]] = {}
    # the same path resolution as training, so what passes here is what the pipeline reads
    paths = image_paths(frame[~blank], config)
    for i, path in zip(np.flatnonzero(~blank), paths, strict=True):
        rows_of.setdefault(Path(path), []).append(int(i) + 1)
    for path, rows in rows_of.items():
        for row in rows[1:]:
            problems["duplicate_image"].append(
                Problem(row, column, f"{path} is also on row {rows[0]}")
            )

    threads = workers or available_cores()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        # one small result per file is kept, never the decoded pixels
        results = pool.map(lambda path: _inspect(path, check_images), rows_of)
        found = dict(zip(rows_of, results, strict=True))
    for path, result in found.items():
        if result is not None:
            kind, detail = result
            problems[kind].extend(Problem(row, column, detail) for row in rows_of[path])
    if not check_images:
        return 0
    return sum(result is None or result[0] == "unreadable_image" for result in found.values())


def _check_labels(
    frame: pd.DataFrame, taxonomy: TaxonomyConfig, problems: dict[str, list[Problem]]
) -> None:
    """Records unknown and unused values, blank categories and values on not-applicable rows."""
    # Absent columns were reported already; blank stand-ins let the other columns be checked.
    needed = [taxonomy.category_column] + [a.source_column for a in taxonomy.attributes]
    present = frame.reindex(columns=list(dict.fromkeys(needed)))
    encoded = encode_labels(present, taxonomy, on_unknown="missing")
    for row, column, value in encoded.unknown:
        problems["unknown_value"].append(
            Problem(row + 1, column, f"{value!r} is not in the taxonomy")
        )
    for row, column, values in encoded.conflicting:
        problems["conflicting_values"].append(
            Problem(row + 1, column, f"{values!r}: exclusive, so the cell counts as missing")
        )
    for attribute in taxonomy.declared_attributes:  # unused categories are listed below
        if attribute.source_column not in frame.columns:
            continue
        used = (encoded.targets[attribute.name] == 1.0).any(axis=0)
        problems["unused_value"].extend(
            Problem(None, attribute.source_column, f"{attribute.name} value {value!r} is unused")
            for value, is_used in zip(attribute.values, used, strict=True) if not is_used
        )
    if taxonomy.category_column not in frame.columns:
        return
    categories = [category_of(cell, taxonomy) for cell in frame[taxonomy.category_column]]
    for i, category in enumerate(categories):
        if category is None:
            problems["blank_category"].append(
                Problem(i + 1, taxonomy.category_column, "blank category")
            )
    known, seen = set(taxonomy.categories), set(categories)
    problems["unused_value"].extend(
        Problem(None, taxonomy.category_column, f"category {category!r} is unused")
        for category in taxonomy.categories if category not in seen
    )
    for attribute in taxonomy.attributes:
        if attribute.applies_to is None or attribute.source_column not in frame.columns:
            continue
        applies = set(attribute.applies_to)
        for i, cell in enumerate(frame[attribute.source_column]):
            category = categories[i]
            if category in known and category not in applies and not is_blank(cell):
                problems["not_applicable_value"].append(
                    Problem(i + 1, attribute.source_column,
                            f"{cell!r} given, but {attribute.name!r} does not apply to "
                            f"category {category!r}")
                )
