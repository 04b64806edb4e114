import numpy as np
import pytest

from kattr.calibration import calibrate_thresholds, load_thresholds, save_thresholds
from kattr.config import config_from_dict
from kattr.metrics import average_accuracy
from kattr.postprocess import decide


def taxonomy(exclusive=False, values=("casual", "party")):
    return config_from_dict({
        "data": {},
        "taxonomy": {
            "category_column": "category",
            "categories": ["top"],
            # Hand-made targets and scores: no product-type output.
            "category_output": None,
            "attributes": [{"name": "occasion", "values": list(values), "exclusive": exclusive}],
        },
    }).taxonomy


def test_f1_calibration_picks_the_best_threshold():
    # One value; positives score 0.8, 0.7, 0.36 and negatives 0.3, 0.2, 0.6. On the grid, F1 is
    # 6/8 at 0.30, 6/7 at 0.35 (one false positive), 4/6 at 0.5 and 4/5 at 0.65.
    target = np.array([[1], [1], [1], [0], [0], [0], [-1]], "float32")
    score = np.array([[0.8], [0.7], [0.36], [0.3], [0.2], [0.6], [0.99]], "float32")
    thresholds = calibrate_thresholds(
        {"occasion": target}, {"occasion": score}, taxonomy(values=["casual"])
    )
    assert thresholds == {"occasion": pytest.approx(0.35)}


def test_always_labelled_exclusive_attribute_answers_its_best_value_even_below_005():
    # Every row has a value (as product type does); two right answers score below 0.05. Eq. (2)
    # counts no answer as wrong, so the best threshold answers them: accuracy 1.0 instead of
    # the 0.5 that any threshold >= 0.05 leaves.
    target = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], "float32")
    score = np.array(
        [[0.04, 0.01, 0.02], [0.01, 0.015, 0.005], [0.9, 0.1, 0.1], [0.1, 0.2, 0.7]], "float32"
    )
    taxonomy_ = taxonomy(exclusive=True, values=("casual", "party", "sports"))
    thresholds = calibrate_thresholds(
        {"occasion": target}, {"occasion": score}, taxonomy_, objective="average_accuracy"
    )
    assert thresholds["occasion"] <= 0.01
    decided = decide(score, np.float32(thresholds["occasion"]), exclusive=True)
    assert average_accuracy(target, decided) == 1.0


def test_average_accuracy_objective_rewards_predicting_nothing_on_empty_rows():
    # Exclusive attribute; two labelled rows and four not-applicable rows with scores up to 0.45.
    target = np.array([[1, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]], "float32")
    score = np.array(
        [[0.9, 0.1], [0.2, 0.4], [0.45, 0.1], [0.1, 0.42], [0.3, 0.1], [0.1, 0.2]], "float32"
    )
    thresholds = calibrate_thresholds(
        {"occasion": target}, {"occasion": score}, taxonomy(exclusive=True),
        objective="average_accuracy", grid=[0.35, 0.4, 0.5],
    )
    # 0.35: rows 1, 2, 5, 6 right -> 4/6; 0.4: rows 1, 2, 5, 6 -> 4/6 (0.42 and 0.45 wrong);
    # 0.5: rows 1, 3, 4, 5, 6 -> 5/6.
    assert thresholds == {"occasion": 0.5}


def test_per_value_thresholds_maximise_the_objective():
    # casual: positives 0.9, negatives 0.7; party: positives 0.3, negatives 0.1.
    target = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], "float32")
    score = np.array([[0.9, 0.1], [0.7, 0.3], [0.7, 0.1], [0.9, 0.3]], "float32")
    thresholds = calibrate_thresholds(
        {"occasion": target}, {"occasion": score}, taxonomy(), per_value=True
    )
    # Perfect on (0.7, 0.9] and (0.1, 0.3]; ties go to the candidate nearest 0.5.
    assert thresholds["occasion"] == pytest.approx([0.75, 0.3])
    shared = calibrate_thresholds({"occasion": target}, {"occasion": score}, taxonomy())
    assert isinstance(shared["occasion"], float)


def test_attribute_without_labelled_rows_keeps_the_default():
    target = -np.ones((3, 2), "float32")
    score = np.full((3, 2), 0.9, "float32")
    assert calibrate_thresholds({"occasion": target}, {"occasion": score}, taxonomy()) == {
        "occasion": 0.5
    }
    chosen = calibrate_thresholds({"occasion": target}, {"occasion": score}, taxonomy(),
                                  per_value=True, default=0.4)
    assert chosen == {"occasion": [0.4, 0.4]}


def test_invalid_objective_and_grid():
    data = {"occasion": np.zeros((1, 2), "float32")}
    with pytest.raises(ValueError, match="objective"):
        calibrate_thresholds(data, data, taxonomy(), objective="auc")
    with pytest.raises(ValueError, match="grid"):
        calibrate_thresholds(data, data, taxonomy(), grid=[0.0, 0.5])


def test_thresholds_json_round_trip(tmp_path):
    path = tmp_path / "thresholds.json"
    thresholds = {"occasion": [0.3, 0.65], "colour": 0.45}
    save_thresholds(thresholds, path)
    assert load_thresholds(path) == thresholds
    assert [p.name for p in tmp_path.iterdir()] == ["thresholds.json"]


@pytest.mark.parametrize("content", ['{"occasion": 1.5}', '{"occasion": []}', "[0.5]", "{"])
def test_load_thresholds_rejects_bad_files(tmp_path, content):
    path = tmp_path / "thresholds.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="thresholds.json"):
        load_thresholds(path)
    assert path.read_text() == content
