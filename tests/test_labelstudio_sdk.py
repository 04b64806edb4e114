"""Label Studio's own SDK reads what kattr writes, and kattr reads what the SDK writes.

`label-studio-sdk` cannot share this environment: its opencv-python-headless pin needs
numpy < 2.3, below TensorFlow's stack here. So the SDK side runs in another Python, named by
``KATTR_LABEL_STUDIO_PYTHON`` (e.g. a venv made with ``pip install label-studio-sdk``); without
it the test skips and says so. kattr writes the labeling config, an audit queue's tasks and a
scored selection queue's tasks; the SDK (`LabelInterface`) validates the config, every task and
every pre-annotation, rejects a broken prediction, and builds a reviewer's annotation with its
own objects, which kattr's import then applies to the manifest.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from kattr.apps.labelstudio import labeling_config, queue_tasks
from kattr.apps.labelstudio_review import import_review
from kattr.apps.scoring import CatalogScores
from kattr.config import config_from_dict
from kattr.labels import read_manifest
from kattr.postprocess import thresholds_for

SDK_CHECK = r'''
import copy, json, sys
from importlib.metadata import version
from label_studio_sdk.label_interface import LabelInterface

written = json.load(open(sys.argv[1]))
interface = LabelInterface(written["config"])
interface.validate()
report = {"version": version("label-studio-sdk"), "objects": [o.name for o in interface.objects],
          "controls": {c.name: {"to": c.to_name, "multiple": c.is_multiple_choice,
                                "labels": list(c.labels)} for c in interface.controls}}
# validate_task() fails on tasks that carry predictions (SDK 2.1): check data and each
# prediction on their own.
report["tasks"] = [interface.validate_task({"data": t["data"]}) for t in written["tasks"]]
report["prediction_errors"] = [interface.validate_prediction(p, return_errors=True)
                               for t in written["tasks"] for p in t.get("predictions", [])]
broken = copy.deepcopy(written["tasks"][0]["predictions"][0])
broken["result"][0]["value"]["choices"] = ["magenta"]
report["broken_errors"] = interface.validate_prediction(broken, return_errors=True)
regions = interface.create_regions({"colour": "off white", "occasion": ["casual", "r&b night"]})
report["annotation"] = [json.loads(r.to_json()) for r in regions]  # to_json() gives text
print(json.dumps(report, default=str))
'''


def sdk_python() -> str:
    python = os.environ.get("KATTR_LABEL_STUDIO_PYTHON")
    if not python:
        pytest.skip("label-studio-sdk needs numpy < 2.3 and cannot share this environment: set "
                    "KATTR_LABEL_STUDIO_PYTHON to a Python with `pip install label-studio-sdk`")
    return python


TAXONOMY = config_from_dict({"data": {}, "taxonomy": {
    "category_column": "category", "categories": ["tshirt", "bag"],
    "attributes": [
        {"name": "colour", "values": ["red", "blue", "green", "off white"]},
        {"name": "sleeve", "values": ["short", "long"], "applies_to": ["tshirt"]},
        {"name": "occasion", "values": ["casual", "party", "r&b night"], "exclusive": False},
    ]}}).taxonomy


def written_tasks() -> tuple[pd.DataFrame, list[dict]]:
    """A manifest, and the tasks of an audit queue and of a scored selection queue on it."""
    manifest = pd.DataFrame({"image": [f"images/{c}.png" for c in "abcde"],
                             "category": ["tshirt", "tshirt", "bag", "tshirt", "bag"],
                             "colour": [None, "red", None, "green", "blue"],
                             "sleeve": [None, "long", None, "short", None],
                             "occasion": [None, "casual", "casual", None, None]})
    audit = pd.DataFrame([
        (1, 2, "images/b.png", "colour", "red", "off white", 0.93),
        (2, 3, "images/c.png", "occasion", "casual", "party|r&b night", 0.71),
        (3, 2, "images/b.png", "sleeve", "long", "short", 0.64),
    ], columns=["rank", "row", "image", "attribute", "catalog_value", "predicted_value",
                "predicted_score"])
    select = manifest.iloc[[0, 2, 3]].reset_index(drop=True)
    select["row"], select["uncertainty"], select["rank"] = [1, 3, 4], [0.9, 0.7, 0.5], [1, 2, 3]
    scores = {a.name: np.full((3, len(a.values)), 0.1, np.float32) for a in TAXONOMY.attributes}
    scores["colour"][:, 3], scores["sleeve"][:, 0], scores["occasion"][:, 1:] = 0.8, 0.9, 0.7
    scored = CatalogScores(scores=scores, embeddings=np.zeros((3, 4), np.float32),
                           taxonomy=TAXONOMY, thresholds=thresholds_for(TAXONOMY, None),
                           paths=list(select["image"]))
    audit_tasks, _ = queue_tasks(audit, TAXONOMY, model_version="m")
    select_tasks, _ = queue_tasks(select, TAXONOMY, scores=scored)
    return manifest, audit_tasks + select_tasks


def test_the_sdk_validates_kattrs_tasks_and_kattr_imports_the_sdks_annotation(tmp_path):
    python = sdk_python()
    manifest, tasks = written_tasks()
    (tmp_path / "written.json").write_text(json.dumps(
        {"config": labeling_config(TAXONOMY), "tasks": tasks}))
    checked = subprocess.run([python, "-c", SDK_CHECK, str(tmp_path / "written.json")],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr[-2000:]
    report = json.loads(checked.stdout.strip().splitlines()[-1])

    controls = report["controls"]
    assert set(controls) == {a.name for a in TAXONOMY.attributes}
    for attribute in TAXONOMY.attributes:
        control = controls[attribute.name]
        assert control["labels"] == list(attribute.values) and control["to"] == ["image"]
        assert control["multiple"] == (not attribute.exclusive)
    assert "image" in report["objects"]
    assert report["tasks"] == [True] * len(tasks)
    assert len(report["prediction_errors"]) >= 5 and not any(report["prediction_errors"])
    assert report["broken_errors"] and "magenta" in str(report["broken_errors"])

    # The reviewer's choices, built by the SDK, go back into the manifest with provenance.
    manifest.to_csv(tmp_path / "labels.csv", index=False)
    export = [{"id": 1, "data": tasks[0]["data"], "annotations": [{
        "id": 11, "completed_by": 1, "was_cancelled": False, "ground_truth": False,
        "result": report["annotation"]}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    review = import_review(tmp_path / "export.json", tmp_path / "labels.csv",
                           tmp_path / "reviewed.csv", TAXONOMY)
    assert not review.conflicts
    reviewed = read_manifest(tmp_path / "reviewed.csv")
    row = tasks[0]["data"]["kattr_row"] - 1
    assert reviewed.at[row, "colour"] == "off white"
    assert reviewed.at[row, "occasion"] == "casual|r&b night"
    assert reviewed.at[row, "colour_source"] == "review"
    unchanged = [c for c in manifest.columns if c not in ("colour", "occasion")]
    pd.testing.assert_frame_equal(reviewed[unchanged], read_manifest(tmp_path / "labels.csv")[
        unchanged])
