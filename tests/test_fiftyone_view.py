"""FiftyOne view: per-row fields from hand-made scores; the dataset itself where FiftyOne runs."""

import numpy as np
import pytest
from test_apps_logic import make_scores, manifest

from kattr.apps import to_fiftyone
from kattr.apps.fiftyone_view import sample_fields


def scored_catalog():
    frame = manifest([
        ["a.png", "tshirt", "red", "short", "casual|party"],  # agrees on colour and occasion
        ["b.png", "bag", "blue", None, "casual"],              # colour disagrees; no sleeve
        ["c.png", "tshirt", None, "long", None],               # blank cells: nothing to compare
        ["d.png", "tshirt", "red", "short", "casual"],         # its image failed
    ])
    scores = make_scores(frame, {
        "colour": [[0.9, 0.2, 0.1], [0.8, 0.3, 0.1], [0.2, 0.7, 0.1], [0.9, 0.1, 0.1]],
        "sleeve": [[0.9, 0.1], [0.2, 0.1], [0.1, 0.6], [0.9, 0.1]],
        "occasion": [[0.8, 0.7], [0.3, 0.2], [0.6, 0.1], [0.9, 0.1]],
    }, failed=[3])
    return frame, scores


def test_sample_fields_hold_catalog_labels_decisions_agreement_and_embeddings():
    frame, scores = scored_catalog()
    samples = sample_fields(frame, scores)
    assert [s["kattr_row"] for s in samples] == [0, 1, 2, 3]
    first, second, third, failed = samples
    assert first["colour_catalog"] == [("red", None)]
    assert first["colour"] == [("red", pytest.approx(0.9))] and first["colour_agrees"] is True
    assert [v for v, _ in first["occasion"]] == ["casual", "party"]
    assert first["occasion_agrees"] is True
    assert second["colour"] == [("red", pytest.approx(0.8))] and second["colour_agrees"] is False
    assert second["sleeve_agrees"] is None  # sleeve does not apply to bags
    assert third["colour_catalog"] == [] and third["colour_agrees"] is None
    assert third["sleeve"] == [("long", pytest.approx(0.6))] and third["sleeve_agrees"] is True
    assert failed["kattr_error"] == "file not found" and failed["embedding"] is None
    assert failed["colour"] == [] and failed["colour_agrees"] is None
    assert failed["colour_catalog"] == [("red", None)]
    np.testing.assert_allclose(first["embedding"], scores.embeddings[0], rtol=1e-6)
    assert first["filepath"].endswith("img0.png") and first["filepath"].startswith("/")


def test_sample_fields_need_one_score_row_per_manifest_row():
    frame, scores = scored_catalog()
    with pytest.raises(ValueError, match="one row per manifest row"):
        sample_fields(frame.iloc[:2], scores)


def fiftyone_or_skip():
    """FiftyOne and its database, or a skip that says which is missing."""
    fiftyone = pytest.importorskip("fiftyone", reason="fiftyone is not installed (optional)")
    try:
        fiftyone.Dataset().delete()
    except Exception as error:  # FiftyOne imports but cannot start or reach its MongoDB
        pytest.skip(f"fiftyone is installed but cannot open a dataset: {str(error)[:200]}")
    return fiftyone


def test_to_fiftyone_builds_browsable_fields():
    fo = fiftyone_or_skip()
    frame, scores = scored_catalog()
    dataset = to_fiftyone(frame, scores)
    try:
        assert len(dataset) == 4
        first = dataset.match(fo.ViewField("kattr_row") == 0).first()
        assert first.colour.label == "red" and first.colour.confidence == pytest.approx(0.9)
        assert [c.label for c in first.occasion.classifications] == ["casual", "party"]
        mistakes = dataset.match(fo.ViewField("colour_agrees") == False)  # noqa: E712
        assert mistakes.values("kattr_row") == [1]
        assert first.embedding.shape == (scores.embeddings.shape[1],)
    finally:
        dataset.delete()

