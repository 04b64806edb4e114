import json

import pytest

from kattr.config import config_from_dict, save_config
from kattr.run_dir import RunDir, load_run


@pytest.fixture
def run_without_model(tmp_path):
    """A run directory whose model file is a placeholder: thresholds are checked first."""
    run = RunDir(tmp_path)
    config = config_from_dict(
        {
            "data": {"image_size": 32},
            "taxonomy": {
                "category_column": "category",
                "categories": ["top"],
                "attributes": [{"name": "colour", "values": ["red", "blue"]}],
            }
        }
    )
    save_config(config, run.config)
    run.model.write_bytes(b"not a model")
    return run


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.2, [0.5, 1.0]])
def test_load_run_rejects_a_threshold_outside_the_open_unit_interval(run_without_model, threshold):
    run_without_model.thresholds.write_text(json.dumps({"colour": threshold}))
    with pytest.raises(ValueError, match=r"thresholds\.json: colour: .*\(0, 1\)"):
        load_run(run_without_model.root)


def test_load_run_names_the_file_of_a_threshold_for_an_unknown_attribute(run_without_model):
    run_without_model.thresholds.write_text(json.dumps({"neckline": 0.5}))
    with pytest.raises(ValueError, match=r"thresholds\.json: .*unknown attribute.*neckline"):
        load_run(run_without_model.root)
