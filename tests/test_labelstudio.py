"""Label Studio round trip: queue -> tasks + labeling config -> reviewer's export -> manifest.

The exports below follow Label Studio's documented formats (guide "Export annotations":
JSON, a list of tasks with `annotations` [{`result`, `was_cancelled`, `ground_truth`,
`completed_by`, ...}]; JSON_MIN, one flat record per annotation with the task data, one key per
control, a single choice as a string and several as {"choices": [...]}, plus `id`,
`annotator`, `annotation_id`, `created_at`, `updated_at`, `lead_time`). No model is trained:
the queues are written by hand with the columns kattr-audit and kattr-select write.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from kattr.apps.audit import QUEUE_COLUMNS
from kattr.apps.labelstudio import export_queue, labeling_config, queue_tasks
from kattr.apps.labelstudio_review import import_review
from kattr.apps.scoring import CatalogScores
from kattr.cli.labelstudio import main
from kattr.config import load_config
from kattr.labels import is_blank, read_manifest


@pytest.fixture
def catalog(synthetic_catalog, tmp_path):
    """`(config, manifest path)`: a private copy of the synthetic manifest (never modified)."""
    manifest = tmp_path / "labels.csv"
    shutil.copy(synthetic_catalog.manifest_path, manifest)
    return load_config(synthetic_catalog.config_path), manifest


def _first(frame, column, exclude=(), where=None):
    for index, cell in enumerate(frame[column]):
        if not is_blank(cell) and index not in exclude and (where is None or where(cell)):
            return index
    raise AssertionError(f"no row with a {column} value")


def _other(values, current):
    return next(value for value in values if value != current)


def _annotation(annotation_id, task_id, annotator, result, cancelled=False, truth=False):
    """An annotation as Label Studio's JSON export writes it (guide "Export annotations")."""
    return {
        "id": annotation_id, "completed_by": annotator, "was_cancelled": cancelled,
        "ground_truth": truth, "created_at": "2024-05-02T10:00:00.000000Z",
        "updated_at": "2024-05-02T10:01:00.000000Z", "lead_time": 12.5, "result_count": 0,
        "task": task_id,
        "result": [] if cancelled else [
            {"id": f"r{annotation_id}{i}", "from_name": name, "to_name": "image",
             "type": "choices", "origin": "manual", "value": {"choices": values}}
            for i, (name, values) in enumerate(result.items())
        ],
    }


def test_labeling_config_has_one_choices_per_attribute(catalog):
    config, _ = catalog
    root = ET.fromstring(labeling_config(config.taxonomy))
    assert root.tag == "View"
    assert root.find("Image").get("name") == "image"
    choices = {element.get("name"): element for element in root.iter("Choices")}
    assert list(choices) == [a.name for a in config.taxonomy.attributes]
    assert "product_type" in choices
    for attribute in config.taxonomy.attributes:
        element = choices[attribute.name]
        assert element.get("toName") == "image"
        assert element.get("choice") == ("single" if attribute.exclusive else "multiple")
        assert [c.get("value") for c in element.iter("Choice")] == attribute.values
    assert choices["occasion"].get("choice") == "multiple"


def test_audit_queue_round_trip_json(catalog, tmp_path):
    config, manifest = catalog
    frame = read_manifest(manifest)
    colours = config.taxonomy.attributes[0].values
    patterns = config.taxonomy.attributes[1].values
    a = _first(frame, "colour")
    b = _first(frame, "occasion", exclude={a})
    c = _first(frame, "colour", exclude={a, b})
    new_colour = _other(colours, frame.at[a, "colour"])
    queue = pd.DataFrame([
        (1, a + 1, f"{tmp_path}/images/{frame.at[a, 'image']}", "colour", frame.at[a, "colour"],
         new_colour, 0.93),
        (2, b + 1, frame.at[b, "image"], "occasion", frame.at[b, "occasion"], "party|sport", 0.71),
        (3, a + 1, frame.at[a, "image"], "pattern", frame.at[a, "pattern"],
         _other(patterns, frame.at[a, "pattern"]), 0.64),
        (4, c + 1, frame.at[c, "image"], "colour", frame.at[c, "colour"],
         _other(colours, frame.at[c, "colour"]), 0.6),
    ], columns=["rank", "row", "image", "attribute", "catalog_value", "predicted_value",
                "predicted_score"])
    for column in QUEUE_COLUMNS:
        queue[column] = queue.get(column, 0.0)
    queue[QUEUE_COLUMNS].to_csv(tmp_path / "audit.csv", index=False)

    result = export_queue(tmp_path / "audit.csv", tmp_path / "tasks.json", config.taxonomy,
                          model_version="synthetic-run", image_prefix="/data/local-files/?d=")
    assert result.kind == "audit"
    assert result.config_output == tmp_path / "tasks.config.xml"
    ET.fromstring(result.config_output.read_text())
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [task["data"]["kattr_row"] for task in tasks] == [a + 1, b + 1, c + 1]
    first = tasks[0]
    assert first["data"]["image"].startswith("/data/local-files/?d=")
    prediction = first["predictions"][0]
    assert prediction["model_version"] == "synthetic-run"
    assert prediction["score"] == pytest.approx((0.93 + 0.64) / 2, abs=1e-4)
    assert [(r["from_name"], r["to_name"], r["type"], r["score"]) for r in prediction["result"]] \
        == [("colour", "image", "choices", 0.93), ("pattern", "image", "choices", 0.64)]
    assert tasks[1]["predictions"][0]["result"][0]["value"] == {"choices": ["party", "sport"]}

    # The reviewers: task 1 accepts the colour and keeps the catalog's pattern; task 2 gets two
    # annotators who disagree and one who skipped; task 3 was skipped; task 4 comes from an
    # older export whose row is gone from the manifest.
    for number, task in enumerate(tasks, start=1):
        task["id"] = number
    tasks[0]["annotations"] = [_annotation(
        11, 1, 1, {"colour": [new_colour], "pattern": [frame.at[a, "pattern"]]})]
    tasks[1]["annotations"] = [
        _annotation(21, 2, 1, {"occasion": ["party", "sport"]}),
        _annotation(22, 2, 2, {"occasion": ["casual"]}),
        _annotation(23, 2, 3, {}, cancelled=True),
    ]
    tasks[2]["annotations"] = [_annotation(31, 3, 1, {}, cancelled=True)]
    tasks.append({"id": 4, "data": {"image": "gone.jpg", "kattr_row": len(frame) + 5,
                                    "kattr_image": "images/gone.jpg"},
                  "annotations": [_annotation(41, 4, 1, {"colour": ["red"]})]})
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    before = manifest.read_bytes()

    review = import_review(tmp_path / "export.json", manifest, tmp_path / "reviewed.csv",
                           config.taxonomy)
    assert manifest.read_bytes() == before
    assert review.export.format == "JSON"
    assert (review.export.tasks, review.export.cancelled, review.export.unannotated) == (4, 2, 1)
    assert review.conflict_counts() == {"disagreement": 1, "missing_row": 1}
    disagreement = next(c for c in review.conflicts if c.kind == "disagreement")
    assert (disagreement.row, disagreement.attribute, disagreement.tasks) == (b + 1, "occasion",
                                                                              ["2"])
    assert next(c for c in review.conflicts if c.kind == "missing_row").tasks == ["4"]
    reviewed = read_manifest(tmp_path / "reviewed.csv")
    _assert_only(frame, reviewed, {(a, "colour"): new_colour})
    assert reviewed.at[a, "colour_source"] == "review"
    assert reviewed.at[a, "pattern_source"] == "review"
    assert reviewed["colour_source"].notna().sum() == 1
    assert reviewed["pattern_source"].notna().sum() == 1
    assert "occasion_source" not in reviewed.columns
    assert (review.reviewed["colour"], review.changed["colour"]) == (1, 1)
    assert (review.reviewed["pattern"], review.changed["pattern"]) == (1, 0)


def _assert_only(before: pd.DataFrame, after: pd.DataFrame, changes: dict) -> None:
    """`after` holds `before`'s columns with exactly `changes` ((row, column) -> value)."""
    original = after[list(before.columns)]
    differ = (original.fillna("") != before.fillna(""))
    changed = {(int(i), column) for i, column in zip(*np.nonzero(differ.to_numpy()), strict=True)}
    assert {(i, before.columns[j]) for i, j in changed} == set(changes)
    for (row, column), value in changes.items():
        assert after.at[row, column] == value


def _selection_queue(frame: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    queue = frame.iloc[rows].copy().reset_index(drop=True)
    queue["uncertainty"] = np.linspace(0.9, 0.5, len(rows)).round(6)
    queue["rank"] = np.arange(1, len(rows) + 1)
    return queue


def test_selection_queue_round_trip_json_min(catalog, tmp_path):
    config, manifest = catalog
    taxonomy = config.taxonomy
    frame = read_manifest(manifest)
    blank_colour = [i for i, cell in enumerate(frame["colour"]) if is_blank(cell)][:3]
    blank_occasion = [i for i, cell in enumerate(frame["occasion"])
                      if is_blank(cell) and i not in blank_colour][:2]
    filled = _first(frame, "colour", exclude=set(blank_colour + blank_occasion))
    rows = blank_colour + blank_occasion + [filled]
    queue = _selection_queue(frame, rows)
    queue.to_csv(tmp_path / "to-label.csv", index=False)

    # Scores as a scorer returns them: blank colour cells get "green" (0.8) pre-annotated.
    count = len(rows)
    scores = {a.name: np.full((count, len(a.values)), 0.1, np.float32)
              for a in taxonomy.attributes}
    scores["colour"][:, a_index("colour", taxonomy, "green")] = 0.8
    scores["occasion"][:, :2] = 0.7
    catalog_scores = CatalogScores(
        scores=scores, embeddings=np.zeros((count, 4), np.float32), taxonomy=taxonomy,
        thresholds={a.name: np.full(len(a.values), 0.5, np.float32) for a in taxonomy.attributes},
        paths=list(queue["image"]),
    )
    result = export_queue(tmp_path / "to-label.csv", tmp_path / "tasks.json", taxonomy,
                          config_output=tmp_path / "ls" / "config.xml", scores=catalog_scores)
    assert result.kind == "select"
    assert (tmp_path / "ls" / "config.xml").exists()
    first = result.tasks[0]
    assert first["data"]["kattr_row"] is None and first["data"]["kattr_queue"] == "select"
    items = {item["from_name"]: item for item in first["predictions"][0]["result"]}
    assert items["colour"]["value"] == {"choices": ["green"]}
    assert items["colour"]["score"] == pytest.approx(0.8)
    # Only blank cells are pre-annotated: the last row has every cell it needs.
    assert "colour" not in {item["from_name"] for task in result.tasks[3:]
                            for item in task.get("predictions", [{}])[0].get("result", [])}
    unscored, _ = queue_tasks(queue, taxonomy)
    assert all("predictions" not in task for task in unscored)

    # JSON_MIN as Label Studio writes it: data fields, then one key per control.
    def record(task_id, position, annotation_id, **choices):
        data = dict(result.tasks[position]["data"])
        data.update(id=task_id, annotator=annotation_id % 10, annotation_id=annotation_id,
                    created_at="2024-05-02T10:00:00.000000Z",
                    updated_at="2024-05-02T10:01:00.000000Z", lead_time=3.0, **choices)
        return data

    colour_rows = blank_colour
    records = [
        record(1, 0, 11, colour="green"),
        record(2, 1, 21, colour="black"),
        record(2, 1, 22, colour="black"),  # a second annotator agrees
        record(3, 2, 31, colour="magenta"),  # not in the taxonomy
        record(4, 3, 41, occasion={"choices": ["casual", "party"]}),
        record(5, 4, 51, occasion="sport"),  # a single choice of a multiple control: a string
    ]
    unannotated = dict(result.tasks[5]["data"], id=6, annotator=None, annotation_id=None)
    records.append(unannotated)
    (tmp_path / "export-min.json").write_text(json.dumps(records))
    before = manifest.read_bytes()
    review = import_review(tmp_path / "export-min.json", manifest,
                           tmp_path / "reviewed.parquet", taxonomy)
    assert manifest.read_bytes() == before
    assert review.export.format == "JSON_MIN"
    assert (review.export.tasks, review.export.unannotated) == (6, 1)
    assert review.conflict_counts() == {"unknown_value": 1}
    conflict = review.conflicts[0]
    assert (conflict.row, conflict.attribute, conflict.tasks) == (colour_rows[2] + 1, "colour",
                                                                  ["3"])
    reviewed = read_manifest(tmp_path / "reviewed.parquet")
    _assert_only(frame, reviewed, {
        (colour_rows[0], "colour"): "green", (colour_rows[1], "colour"): "black",
        (blank_occasion[0], "occasion"): "casual|party", (blank_occasion[1], "occasion"): "sport",
    })
    assert reviewed["colour_source"].tolist().count("review") == 2
    assert reviewed.at[blank_occasion[0], "occasion_source"] == "review"
    assert review.changed == {"colour": 2, "pattern": 0, "sleeve": 0, "occasion": 2,
                              "product_type": 0}


def a_index(name, taxonomy, value):
    attribute = next(a for a in taxonomy.attributes if a.name == name)
    return attribute.values.index(value)


def test_cli_round_trip_and_refusals(catalog, synthetic_catalog, tmp_path, capsys):
    config, manifest = catalog
    frame = read_manifest(manifest)
    row = _first(frame, "colour")
    queue = _selection_queue(frame, [row])
    queue.loc[0, "colour"] = None
    queue.to_csv(tmp_path / "to-label.csv", index=False)
    cfg = str(synthetic_catalog.config_path)
    assert main(["export", str(tmp_path / "to-label.csv"), "--config", cfg,
                 "--output", str(tmp_path / "tasks.json")]) == 0
    assert "select queue: 1 task(s), 0 pre-annotated" in capsys.readouterr().out
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    ET.fromstring((tmp_path / "tasks.config.xml").read_text())
    tasks[0]["id"] = 7
    tasks[0]["annotations"] = [_annotation(1, 7, 1, {"colour": ["yellow"], "shade": ["dark"]})]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    run_dir = tmp_path / "run"  # a run directory's resolved config gives the same taxonomy
    run_dir.mkdir()
    shutil.copy(cfg, run_dir / "config.yaml")
    args = ["import", str(tmp_path / "export.json"), "--run", str(run_dir),
            "--manifest", str(manifest)]
    assert main(args + ["--output", str(manifest)]) == 2
    assert "is --manifest" in capsys.readouterr().err
    assert main(args + ["--output", str(tmp_path / "out.csv"),
                        "--conflicts", str(tmp_path / "conflicts.csv")]) == 0
    captured = capsys.readouterr()
    assert "changed 1 {'colour': 1}" in captured.out
    assert "unknown_attribute: no row, shade, task(s) 7" in captured.err
    assert read_manifest(tmp_path / "out.csv").at[row, "colour"] == "yellow"
    assert read_manifest(tmp_path / "conflicts.csv")["kind"].tolist() == ["unknown_attribute"]


def test_export_rejects_values_outside_the_taxonomy(catalog, tmp_path):
    config, _ = catalog
    queue = pd.DataFrame([{"rank": 1, "row": 1, "image": "images/00000.jpg",
                           "attribute": "colour", "catalog_value": "red",
                           "predicted_value": "mauve", "predicted_score": 0.9}])
    with pytest.raises(ValueError, match="'mauve' is not in attribute 'colour'"):
        queue_tasks(queue, config.taxonomy)
    queue["attribute"], queue["predicted_value"] = "fabric", "silk"
    with pytest.raises(ValueError, match="'fabric' is not in the taxonomy"):
        queue_tasks(queue, config.taxonomy)


def test_cli_predict_scores_the_queue_with_the_runs_model(catalog, synthetic_catalog, tmp_path,
                                                          capsys):
    """`export --predict --run`: the queue's images are scored by the run's model and its
    blank cells pre-annotated with the scorer's decisions (an untrained tiny model will do)."""
    import keras

    from kattr.apps.scoring import Scorer
    from kattr.config import save_config
    from kattr.model import build_model

    config, manifest = catalog
    run_dir = tmp_path / "tiny-run"
    run_dir.mkdir()
    config = load_config(synthetic_catalog.config_path,
                         ["model.backbone=tiny_cnn", "model.weights=null"])
    save_config(config, run_dir / "config.yaml")
    keras.utils.set_random_seed(0)
    build_model(config).save(run_dir / "model.keras")
    # Every score passes a tiny threshold: each blank cell gets the scorer's top value.
    (run_dir / "thresholds.json").write_text(
        json.dumps({a.name: 1e-6 for a in config.taxonomy.attributes}))
    frame = read_manifest(manifest)
    rows = [i for i, cell in enumerate(frame["colour"]) if is_blank(cell)][:2]
    queue = _selection_queue(frame, rows)
    queue.to_csv(tmp_path / "to-label.csv", index=False)
    assert main(["export", str(tmp_path / "to-label.csv"), "--run", str(run_dir), "--predict",
                 "--output", str(tmp_path / "tasks.json")]) == 0
    assert "select queue: 2 task(s), 2 pre-annotated (model_version 'tiny-run')" in (
        capsys.readouterr().out)
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    paths = [str((config.image_root / path).resolve()) for path in queue["image"]]
    with Scorer.from_run(run_dir) as scorer:
        scores = scorer.score_files(paths)
    colour = next(a for a in config.taxonomy.attributes if a.name == "colour")
    for position, task in enumerate(tasks):
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "tiny-run"
        items = {item["from_name"]: item for item in prediction["result"]}
        expected = int(np.argmax(scores.scores["colour"][position]))
        assert items["colour"]["value"]["choices"] == [colour.values[expected]]
        assert items["colour"]["score"] == pytest.approx(
            scores.scores["colour"][position][expected], abs=1e-4)


def test_result_items_that_are_not_objects_name_the_task_and_write_nothing(catalog, tmp_path):
    config, manifest = catalog
    export = [{"id": 5, "data": {"image": "a.jpg", "kattr_row": 1},
               "annotations": [{"id": 12, "result": ['{"from_name": "colour"}']}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    with pytest.raises(ValueError, match="task 5, annotation 12: expected result items"):
        import_review(tmp_path / "export.json", manifest, tmp_path / "out.csv", config.taxonomy)
    assert not (tmp_path / "out.csv").exists()
