"""Label Studio export: the audit and selection queues as pre-annotated Label Studio tasks.

A queue becomes a list of tasks in Label Studio's import format, one per product (manifest row),
plus the labeling config that matches it: an `Image` and a note, then one `Choices` control per
attribute (`name` = the attribute, `choice="multiple"` for multi-label attributes). kattr's
predictions are the tasks' pre-annotations: one `predictions` entry per task, with
`model_version`, a task `score` (the mean of its items' scores) and one `choices` result item
per attribute to review, whose `score` is the predicted value set's score.

- Audit queues (`kattr-audit`: one row per suspect cell, columns `row`, `attribute`,
  `predicted_value`, `predicted_score`, ...): one task per manifest row, pre-annotated with the
  predicted values of its suspect cells; the note shows the catalog's values.
- Selection queues (`kattr-select`: manifest rows plus `uncertainty` and `rank`): one task per
  row; its blank cells are the ones to fill. The queue holds no scores, so tasks carry
  pre-annotations only when `scores` are given (the queue's images scored by a model).

Task data keys: `image` (the image URL: `image_prefix` + the queue's image path), `kattr_row`
(1-based manifest row, when the queue has one), `kattr_image` (the image path as in the queue;
with `kattr_row` it finds the row again on import), `kattr_queue`, `kattr_rank`, `kattr_note`.
Attribute names must differ from them (and from the keys Label Studio's JSON_MIN export adds),
since JSON_MIN puts data fields and controls side by side.

Example:
    >>> config = load_review_config(run="runs/shirts")
    >>> result = export_queue("audit.csv", "tasks.json", config.taxonomy,
    ...                       model_version="shirts")
    >>> result.config_output.name, len(result.tasks)
    ('tasks.config.xml', 42)
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kattr._atomic import write_text_atomic
from kattr.apps._cells import applicability_categories, applicable_rows, predicted_decisions
from kattr.config import AttributeConfig, Config, TaxonomyConfig
from kattr.labels import cell_values, is_blank, read_manifest

__all__ = [
    "DATA_KEYS",
    "ExportResult",
    "export_queue",
    "labeling_config",
    "load_review_config",
    "queue_kind",
    "queue_tasks",
]

IMAGE_NAME = "image"
NOTE_NAME = "kattr_note"
DATA_KEYS = (IMAGE_NAME, "kattr_row", "kattr_image", "kattr_queue", "kattr_rank", NOTE_NAME)
# Keys Label Studio's JSON_MIN export adds beside the task data.
_JSON_MIN_KEYS = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time",
                  "agreement")
_AUDIT_COLUMNS = ("row", "attribute", "predicted_value", "predicted_score")


@dataclass
class ExportResult:
    """Label Studio tasks of a queue and their labeling config.

    Args:
        tasks: the tasks, in Label Studio's JSON import format.
        config_xml: the labeling config (one `Choices` per attribute).
        kind: `audit` or `select`, the queue format read.
        output: the tasks file written (None when only computed).
        config_output: the labeling config file written (None when only computed).
    """

    tasks: list[dict]
    config_xml: str
    kind: str
    output: Path | None = None
    config_output: Path | None = None


def load_review_config(
    config: str | os.PathLike | None = None, run: str | os.PathLike | None = None
) -> Config:
    """The experiment config whose taxonomy the review uses: `--config CFG` or `--run RUN_DIR`
    (the run's resolved `config.yaml`, i.e. the taxonomy the model was trained with)."""
    from kattr.config import load_config
    from kattr.run_dir import RunDir, _legacy_overrides

    if (config is None) == (run is None):
        raise ValueError(
            "expected exactly one of --config CFG or --run RUN_DIR for the taxonomy. "
            f"Received: config={config!r}, run={run!r}"
        )
    if config is not None:
        return load_config(config)
    path = RunDir(run).config
    if not path.exists():
        raise FileNotFoundError(f"{run}: not a kattr run directory ({path.name} is missing)")
    return load_config(path, _legacy_overrides(path))


def _check_names(taxonomy: TaxonomyConfig) -> None:
    reserved = set(DATA_KEYS) | set(_JSON_MIN_KEYS)
    clashing = [a.name for a in taxonomy.attributes if a.name in reserved]
    if clashing:
        raise ValueError(
            f"attribute name(s) {clashing} clash with Label Studio task keys {sorted(reserved)}; "
            f"rename the attribute. Received: {clashing}"
        )


def labeling_config(taxonomy: TaxonomyConfig) -> str:
    """The labeling-config XML: the image, the note, one `Choices` per attribute."""
    _check_names(taxonomy)
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=IMAGE_NAME, value=f"${IMAGE_NAME}", zoom="true")
    ET.SubElement(view, "Text", name=NOTE_NAME, value=f"${NOTE_NAME}")
    for attribute in taxonomy.attributes:
        ET.SubElement(view, "Header", value=attribute.name)
        choices = ET.SubElement(
            view, "Choices", name=attribute.name, toName=IMAGE_NAME,
            choice="single" if attribute.exclusive else "multiple", showInline="true",
        )
        for value in attribute.values:
            ET.SubElement(choices, "Choice", value=value)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def _cell_values(cell, attribute: AttributeConfig, separator: str, where: str) -> list[str]:
    """The canonical values of a queue cell (`kattr.labels.cell_values`; [] when blank), each
    checked against the taxonomy."""
    values = cell_values(cell, separator, attribute.merge)
    for value in values:
        if value not in attribute.values:
            raise ValueError(
                f"{where}: value {value!r} is not in attribute {attribute.name!r}'s taxonomy "
                f"{attribute.values}; was the queue made with another model? Received: {cell!r}"
            )
    return values


def _result(attribute: AttributeConfig, values: list[str], score: float) -> dict:
    return {
        "from_name": attribute.name, "to_name": IMAGE_NAME, "type": "choices",
        "value": {"choices": values}, "score": round(float(score), 4),
    }


def _prediction(results: list[dict], model_version: str) -> list[dict]:
    if not results:
        return []
    score = float(np.mean([item["score"] for item in results]))
    return [{"model_version": model_version, "score": round(score, 4), "result": results}]


def _row_number(value) -> int | None:
    if is_blank(value):
        return None
    try:
        return int(float(value))
    except ValueError:
        raise ValueError(
            f"queue column 'row': expected a 1-based row. Received: {value!r}"
        ) from None


def _audit_tasks(queue, taxonomy, model_version, image_prefix, image_column) -> list[dict]:
    by_name = {attribute.name: attribute for attribute in taxonomy.attributes}
    tasks: dict[int, dict] = {}
    for position, item in enumerate(queue.to_dict("records")):
        where = f"queue row {position + 1}"
        attribute = by_name.get(str(item["attribute"]))
        if attribute is None:
            raise ValueError(
                f"{where}: attribute {item['attribute']!r} is not in the taxonomy "
                f"{list(by_name)}; was the queue made with another model?"
            )
        row = _row_number(item["row"])
        if row is None:
            raise ValueError(f"{where}: blank 'row' cell; an audit queue names its manifest rows")
        image = str(item[image_column])
        task = tasks.setdefault(row, {
            "data": {IMAGE_NAME: image_prefix + image, "kattr_row": row, "kattr_image": image,
                     "kattr_queue": "audit", "kattr_rank": _rank(item, position), NOTE_NAME: ""},
            "results": [], "notes": [],
        })
        values = _cell_values(item["predicted_value"], attribute, taxonomy.separator, where)
        score = float(item["predicted_score"])
        if values:
            task["results"].append(_result(attribute, values, 0.0 if math.isnan(score) else score))
        catalog = "" if is_blank(item.get("catalog_value")) else str(item["catalog_value"])
        task["notes"].append(
            f"{attribute.name}: catalog {catalog or '(blank)'}, model "
            f"{taxonomy.separator.join(values)} ({score:.2f})"
        )
    out = []
    for task in tasks.values():
        task["data"][NOTE_NAME] = "; ".join(task.pop("notes"))
        predictions = _prediction(task.pop("results"), model_version)
        out.append({"data": task["data"], "predictions": predictions})
    return out


def _rank(item: dict, position: int) -> int:
    rank = item.get("rank")
    return position + 1 if is_blank(rank) else int(float(rank))


def _set_score(scores: np.ndarray, chosen: np.ndarray, exclusive: bool) -> float:
    """The chosen value set's score, as `kattr-audit` computes it."""
    if exclusive:
        return float(scores[chosen].max())
    return float(np.where(chosen, scores, 1.0 - scores).prod())


def _select_tasks(queue, taxonomy, model_version, image_prefix, image_column, scores):
    # A blank cell is to fill where its attribute applies to the row's category: the catalog's,
    # else the predicted product type (as kattr-select chose the rows).
    queue = queue.reset_index(drop=True)
    category_index, _ = applicability_categories(queue, taxonomy, scores)
    applies = {a.name: applicable_rows(queue, taxonomy, a, category_index)
               for a in taxonomy.attributes}
    tasks = []
    for position, item in enumerate(queue.to_dict("records")):
        image = str(item[image_column])
        blank, filled, results = [], [], []
        for attribute in taxonomy.attributes:
            cell = item.get(attribute.source_column)
            if not is_blank(cell):
                filled.append(f"{attribute.name} {cell}")
                continue
            if not applies[attribute.name][position]:
                continue
            blank.append(attribute.name)
            if scores is None or not scores.scored[position]:
                continue
            values = np.asarray(scores.scores[attribute.name][position:position + 1], np.float32)
            chosen = predicted_decisions(values, scores.thresholds[attribute.name], attribute)[0]
            if chosen.any():
                names = [v for v, keep in zip(attribute.values, chosen, strict=True) if keep]
                results.append(_result(attribute, names,
                                       _set_score(values[0], chosen, attribute.exclusive)))
        note = f"to fill: {', '.join(blank) or '(none)'}; catalog: {'; '.join(filled) or '-'}"
        if "uncertainty" in item and not is_blank(item["uncertainty"]):
            note += f"; uncertainty {float(item['uncertainty']):.2f}"
        row = _row_number(item["row"]) if "row" in item else None
        task = {"data": {IMAGE_NAME: image_prefix + image, "kattr_row": row, "kattr_image": image,
                         "kattr_queue": "select", "kattr_rank": _rank(item, position),
                         NOTE_NAME: note}}
        predictions = _prediction(results, model_version)
        if predictions:
            task["predictions"] = predictions
        tasks.append(task)
    return tasks


def queue_kind(queue: pd.DataFrame) -> str:
    """`audit` for a `kattr-audit` queue (one row per suspect cell), else `select`."""
    return "audit" if all(column in queue.columns for column in _AUDIT_COLUMNS) else "select"


def queue_tasks(
    queue: pd.DataFrame,
    taxonomy: TaxonomyConfig,
    model_version: str = "kattr",
    image_prefix: str = "",
    image_column: str = "image",
    scores=None,
) -> tuple[list[dict], str]:
    """Label Studio tasks of an audit or selection queue; returns `(tasks, kind)`.

    Args:
        queue: the queue, as read with `kattr.labels.read_manifest`.
        taxonomy: the model's taxonomy (the queue's values are checked against it).
        model_version: the predictions' `model_version`, shown in Label Studio.
        image_prefix: prepended to the queue's image paths to make the `image` URL, e.g.
            `/data/local-files/?d=` for Label Studio's local file serving, or an HTTP base.
        image_column: the queue's image column (an audit queue's is `image`).
        scores: `CatalogScores` of the queue's rows (selection queues): pre-annotates their
            blank cells with the post-processed predictions. None: no pre-annotations there.
    """
    _check_names(taxonomy)
    kind = queue_kind(queue)
    column = "image" if kind == "audit" else image_column
    if column not in queue.columns:
        raise ValueError(f"queue has no image column {column!r}. Received: {list(queue.columns)}")
    if kind == "audit":
        return _audit_tasks(queue, taxonomy, model_version, image_prefix, column), kind
    missing = [a.source_column for a in taxonomy.attributes if a.source_column not in queue]
    if missing:
        raise ValueError(
            f"selection queue lacks the taxonomy's column(s) {missing}; expected a kattr-audit "
            f"queue (columns {list(_AUDIT_COLUMNS)}) or a kattr-select queue (the manifest's "
            f"columns). Received: {list(queue.columns)}"
        )
    if scores is not None and len(scores) != len(queue):
        raise ValueError(f"scores must have one row per queue row ({len(queue)}). "
                         f"Received: {len(scores)}")
    return _select_tasks(queue, taxonomy, model_version, image_prefix, column, scores), kind


def export_queue(
    queue: str | os.PathLike,
    output: str | os.PathLike,
    taxonomy: TaxonomyConfig,
    config_output: str | os.PathLike | None = None,
    model_version: str = "kattr",
    image_prefix: str = "",
    image_column: str = "image",
    scores=None,
) -> ExportResult:
    """Writes a queue's Label Studio tasks (JSON) and labeling config (XML), atomically.

    Args:
        queue: the audit or selection queue (CSV/Parquet).
        output: the tasks file to import into Label Studio.
        config_output: the labeling config; defaults to `<output stem>.config.xml` beside it.
        See `queue_tasks` for the others.
    """
    queue, output = Path(queue), Path(output)
    config_output = (Path(config_output) if config_output is not None
                     else output.with_name(f"{output.stem}.config.xml"))
    for path in (output, config_output):
        if path.resolve() == queue.resolve():
            raise ValueError(f"{path}: is the input queue; choose another file")
    tasks, kind = queue_tasks(read_manifest(queue), taxonomy, model_version, image_prefix,
                              image_column, scores)
    config_xml = labeling_config(taxonomy)
    for path, text in ((output, json.dumps(tasks, indent=2, ensure_ascii=False) + "\n"),
                       (config_output, config_xml)):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return ExportResult(tasks, config_xml, kind, output, config_output)
