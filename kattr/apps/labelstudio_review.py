"""Label Studio import: apply reviewers' decisions from a Label Studio export to the manifest.

Reads Label Studio's `JSON` export (tasks with their `annotations`) or its `JSON_MIN` export
(one flat record per annotation: the task data, one key per control holding the choice, or
`{"choices": [...]}` for several, and `id`, `annotator`, `annotation_id`, ...) of tasks made by
`kattr.apps.labelstudio` (or any task whose data has `kattr_row`/`kattr_image` and whose
`Choices` controls are named after the attributes). Each task is found again in the manifest
by its row (`kattr_row`) and image (`kattr_image`): a row whose image still matches, else the
one row that holds that image now.

Rules:
- A cell is reviewed when an annotation has a choice for its attribute; it gets the chosen
  values (taxonomy order, joined with the separator) and `<attribute>_source = review`. Cells
  without a choice, and every other cell, stay as they were (a confirmed value keeps its text).
- Cancelled annotations (skipped tasks, `was_cancelled`) are ignored and counted; so are tasks
  without annotations. JSON_MIN exports hold neither.
- Several annotations of one cell (overlapping annotators, or the same row in two tasks) that
  agree are applied; when they disagree, the ground-truth ones decide if they agree among
  themselves, else the cell is left unchanged and a `disagreement` conflict is reported. No
  "latest wins": a disagreement between people is for a person to settle.
- Conflicts, reported by kind with the task ids and manifest rows: `disagreement`,
  `missing_row` (the task's row and image are no longer in the manifest), `unknown_value` (a
  choice outside the taxonomy), `too_many_values` (several values for an exclusive attribute),
  `unknown_attribute` (a `choices` result whose control is not an attribute; JSON export only).
  A cell with an invalid choice is left unchanged.

Example:
    >>> result = import_review("export.json", "labels.csv", "labels.reviewed.csv", taxonomy)
    >>> result.changed, result.conflict_counts()
    ({'colour': 12, 'occasion': 3}, {'disagreement': 1})
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import pandas as pd

from kattr.apps._cells import check_columns
from kattr.config import AttributeConfig, TaxonomyConfig, canonical
from kattr.labels import cell_values, is_blank, read_manifest, write_manifest

__all__ = ["Annotation", "Conflict", "LabelStudioExport", "ReviewResult", "apply_review",
           "import_review", "read_export"]

SOURCE = "review"


@dataclass(frozen=True)
class Annotation:
    """One annotation's choices for one task.

    Args:
        task: the Label Studio task id (`#<n>` for the n-th task when the export has none).
        row: the task's 1-based manifest row (`kattr_row`), or None.
        image: the task's image path (`kattr_image`), or None.
        choices: control name -> the chosen values, as written.
        annotation: the annotation id; annotator: who made it.
        ground_truth: the annotation is marked as ground truth (JSON export only).
    """

    task: str
    row: int | None
    image: str | None
    choices: dict[str, list[str]]
    annotation: str | None = None
    annotator: str | None = None
    ground_truth: bool = False


@dataclass
class Conflict:
    """A decision that was not applied, or a task that could not be placed."""

    kind: str
    detail: str
    tasks: list[str] = field(default_factory=list)
    row: int | None = None
    attribute: str | None = None


@dataclass
class LabelStudioExport:
    """The annotations of a Label Studio export and what was set aside while reading it."""

    annotations: list[Annotation]
    format: str
    tasks: int
    cancelled: int = 0
    unannotated: int = 0
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass
class ReviewResult:
    """The reviewed manifest and what happened.

    Args:
        manifest: the manifest with the decisions applied and `<attribute>_source` columns.
        reviewed: attribute -> cells given a decision (`_source = review`).
        changed: attribute -> of those, cells whose values changed.
        conflicts: decisions not applied and tasks not placed (see the module docstring).
        export: the export read (format, task and cancelled counts).
        output: the file written (None when only computed).
    """

    manifest: pd.DataFrame
    reviewed: dict[str, int]
    changed: dict[str, int]
    conflicts: list[Conflict]
    export: LabelStudioExport
    output: Path | None = None

    def conflict_counts(self) -> dict[str, int]:
        return dict(Counter(conflict.kind for conflict in self.conflicts))

    def conflict_table(self) -> pd.DataFrame:
        """One row per conflict: kind, row (1-based), attribute, tasks, detail."""
        return pd.DataFrame(
            [{"kind": c.kind, "row": c.row, "attribute": c.attribute,
              "tasks": " ".join(c.tasks), "detail": c.detail} for c in self.conflicts],
            columns=["kind", "row", "attribute", "tasks", "detail"],
        )


def _min_values(value) -> list[str]:
    """JSON_MIN's value of a control: a string, `{"choices": [...]}`, or a list of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(v) for v in value.get("choices", [])]
    if isinstance(value, list):
        return [v for item in value for v in _min_values(item)]
    return []


def _row(value) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _text(value) -> str | None:
    return None if value is None else str(value)


def read_export(source, taxonomy: TaxonomyConfig) -> LabelStudioExport:
    """Reads a Label Studio `JSON` or `JSON_MIN` export (a path, or the parsed JSON list)."""
    if isinstance(source, str | os.PathLike):
        try:
            records = json.loads(Path(source).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not a Label Studio JSON export: {error}") from None
    else:
        records = source
    records = [records] if isinstance(records, dict) else records
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{source}: expected a JSON list of tasks (Label Studio JSON or "
                         "JSON_MIN export)")
    if any("annotations" in r or "completions" in r for r in records):
        return _read_full(records, taxonomy)
    return _read_min(records, taxonomy)


def _read_full(tasks: list[dict], taxonomy: TaxonomyConfig) -> LabelStudioExport:
    names = {attribute.name for attribute in taxonomy.attributes}
    export = LabelStudioExport([], "JSON", len(tasks))
    unknown: dict[str, list[str]] = defaultdict(list)
    for position, task in enumerate(tasks):
        data = task.get("data") or {}
        task_id = str(task.get("id", f"#{position + 1}"))
        usable = 0
        for annotation in task.get("annotations", task.get("completions")) or []:
            if annotation.get("was_cancelled") or annotation.get("skipped"):
                export.cancelled += 1
                continue
            usable += 1
            choices: dict[str, list[str]] = {}
            for item in annotation.get("result") or []:
                if not isinstance(item, dict):
                    raise ValueError(
                        f"task {task_id}, annotation {annotation.get('id')}: expected result "
                        f"items as JSON objects (Label Studio JSON export). Received: {item!r:.80}"
                    )
                if str(item.get("type", "")).lower() != "choices":
                    continue
                name = str(item.get("from_name"))
                if name not in names:
                    unknown[name].append(task_id)
                    continue
                choices.setdefault(name, []).extend(
                    str(v) for v in (item.get("value") or {}).get("choices", []))
            export.annotations.append(Annotation(
                task_id, _row(data.get("kattr_row")), _text(data.get("kattr_image")), choices,
                _text(annotation.get("id")), _text(annotation.get("completed_by")),
                bool(annotation.get("ground_truth")),
            ))
        export.unannotated += usable == 0
    for name, task_ids in unknown.items():
        export.conflicts.append(Conflict(
            "unknown_attribute", f"control {name!r} is not an attribute of the taxonomy "
            f"{sorted(names)}", sorted(set(task_ids)), attribute=name))
    return export


def _read_min(records: list[dict], taxonomy: TaxonomyConfig) -> LabelStudioExport:
    names = [attribute.name for attribute in taxonomy.attributes]
    annotations, task_ids = [], set()
    for position, record in enumerate(records):
        task_id = str(record.get("id", f"#{position + 1}"))
        task_ids.add(task_id)
        choices = {name: _min_values(record[name]) for name in names if name in record}
        if record.get("annotation_id") is None and not choices:
            continue  # a task exported without annotations
        annotations.append(Annotation(
            task_id, _row(record.get("kattr_row")), _text(record.get("kattr_image")), choices,
            _text(record.get("annotation_id")), _text(record.get("annotator")),
        ))
    annotated = {annotation.task for annotation in annotations}
    return LabelStudioExport(annotations, "JSON_MIN", len(task_ids),
                             unannotated=len(task_ids - annotated))


class _RowFinder:
    """Finds a task's manifest row from its row number and image path."""

    def __init__(self, images: list):
        self.images = [None if is_blank(cell) else PurePath(str(cell).strip()).parts
                       for cell in images]
        self.by_image: dict[tuple, list[int]] = defaultdict(list)
        for index, parts in enumerate(self.images):
            if parts:
                self.by_image[parts].append(index)

    def _matches(self, index: int, parts: tuple) -> bool:
        # The queue may hold the image resolved against an image root: compare path suffixes.
        cell = self.images[index]
        return bool(cell) and parts[len(parts) - len(cell):] == cell

    def find(self, row: int | None, image: str | None) -> int | None:
        """The 0-based manifest row, or None."""
        parts = PurePath(image.strip()).parts if image else ()
        in_range = row is not None and 1 <= row <= len(self.images)
        if in_range and (not parts or self._matches(row - 1, parts)):
            return row - 1
        found = set()
        for start in range(len(parts)):
            found.update(self.by_image.get(parts[start:], []))
        return found.pop() if len(found) == 1 else None


def _values(raw: list[str], attribute: AttributeConfig) -> tuple[list[str], list[str]]:
    """(known values in taxonomy order, unknown values) of one annotation's choices."""
    chosen, unknown = set(), []
    for value in raw:
        value = canonical(value)
        value = attribute.merge.get(value, value)
        if value in attribute.values:
            chosen.add(value)
        elif value:
            unknown.append(value)
    return [v for v in attribute.values if v in chosen], unknown


def _cell_set(cell, attribute: AttributeConfig, separator: str) -> set[str]:
    return set(cell_values(cell, separator, attribute.merge))


def apply_review(
    frame: pd.DataFrame,
    export: LabelStudioExport,
    taxonomy: TaxonomyConfig,
    image_column: str = "image",
) -> ReviewResult:
    """Applies an export's decisions to a manifest frame (a reviewed copy; see module rules)."""
    check_columns(frame, taxonomy)
    if image_column not in frame.columns:
        raise ValueError(f"manifest has no image column {image_column!r}. "
                         f"Received: {list(frame.columns)}")
    frame = frame.reset_index(drop=True)
    by_name = {attribute.name: attribute for attribute in taxonomy.attributes}
    finder = _RowFinder(list(frame[image_column]))
    conflicts = list(export.conflicts)
    votes: dict[tuple[int, str], list[tuple[tuple, Annotation]]] = defaultdict(list)
    blocked: set[tuple[int, str]] = set()
    missing: dict[str, Annotation] = {}
    for annotation in export.annotations:
        index = finder.find(annotation.row, annotation.image)
        if index is None:
            missing.setdefault(annotation.task, annotation)
            continue
        for name, raw in annotation.choices.items():
            attribute = by_name[name]
            values, unknown = _values(raw, attribute)
            if unknown or (attribute.exclusive and len(values) > 1):
                kind = "unknown_value" if unknown else "too_many_values"
                detail = (f"{unknown} not in {attribute.values}" if unknown
                          else f"{values}: {name} takes one value")
                conflicts.append(Conflict(kind, detail, [annotation.task], index + 1, name))
                blocked.add((index, name))
            elif values:
                votes[(index, name)].append((tuple(values), annotation))
    for task, annotation in missing.items():
        conflicts.append(Conflict(
            "missing_row", f"row {annotation.row} / image {annotation.image!r} is no longer "
            "in the manifest", [task], annotation.row))
    output = frame.copy()
    reviewed = {name: 0 for name in by_name}
    changed = {name: 0 for name in by_name}
    for (index, name), cell_votes in sorted(votes.items()):
        if (index, name) in blocked:
            continue
        decision = _decide(cell_votes)
        if decision is None:
            detail = "; ".join(
                f"{'|'.join(values)} (task {a.task}, annotator {a.annotator})"
                for values, a in cell_votes)
            tasks = sorted({a.task for _, a in cell_votes})
            conflicts.append(Conflict("disagreement", detail, tasks, index + 1, name))
            continue
        attribute = by_name[name]
        column, source = attribute.source_column, f"{name}_source"
        if source not in output.columns:
            output[source] = None
        reviewed[name] += 1
        output.at[index, source] = SOURCE
        if set(decision) != _cell_set(output.at[index, column], attribute, taxonomy.separator):
            output.at[index, column] = taxonomy.separator.join(decision)
            changed[name] += 1
    return ReviewResult(output, reviewed, changed, conflicts, export)


def _decide(votes: list[tuple[tuple, Annotation]]) -> tuple | None:
    """The agreed value set; else the ground-truth annotations' if they agree; else None."""
    distinct = {values for values, _ in votes}
    if len(distinct) == 1:
        return distinct.pop()
    truth = {values for values, annotation in votes if annotation.ground_truth}
    return truth.pop() if len(truth) == 1 else None


def import_review(
    export: str | os.PathLike,
    manifest: str | os.PathLike,
    output: str | os.PathLike,
    taxonomy: TaxonomyConfig,
    image_column: str = "image",
) -> ReviewResult:
    """Reads a Label Studio export, applies it to a manifest and writes the reviewed copy.

    The input manifest is never overwritten: `output` must be another file; it is written
    atomically (a temp file in its folder, then `os.replace`), CSV or Parquet by its suffix.
    """
    output = Path(output)
    for name, path in (("--manifest", manifest), ("the export", export)):
        if output.resolve() == Path(path).resolve():
            raise ValueError(f"--output {output}: is {name}; write the reviewed manifest to "
                             "another file")
    frame = read_manifest(manifest)
    check_columns(frame, taxonomy, str(manifest))
    result = apply_review(frame, read_export(export, taxonomy), taxonomy, image_column)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(result.manifest, output)
    result.output = output
    return result
