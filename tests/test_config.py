"""Config loading: typed objects, overrides and errors that name the key path."""

import copy

import pytest
import yaml

from kattr.config import ConfigError, config_from_dict, load_config, save_config

BASE = {
    "data": {"manifest": "labels.csv", "image_size": 64},
    "taxonomy": {
        "category_column": "category",
        "categories": ["TShirt", "dress", "bag"],
        "attributes": [
            {"name": "colour", "values": ["Red", "Navy  Blue"], "merge": {"crimson": "red"}},
            {"name": "sleeve", "values": ["short", "long"], "applies_to": ["tshirt", "Dress"]},
            {"name": "occasion", "values": ["casual", "party"], "exclusive": False},
        ],
    },
}


def with_change(path, value):
    data = copy.deepcopy(BASE)
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[keys[-1]] = value
    return data


def test_valid_config_is_typed_and_canonicalised():
    config = config_from_dict(copy.deepcopy(BASE))
    assert config.data.image_size == 64
    assert config.taxonomy.categories == ["tshirt", "dress", "bag"]
    colour = config.taxonomy.attributes[0]
    assert colour.values == ["red", "navy blue"]
    assert colour.exclusive is True and colour.source_column == "colour"
    assert config.taxonomy.attributes[1].applies_to == ["tshirt", "dress"]
    assert config.model.num_heads == 8
    assert config.train.optimizer.learning_rate == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("data.image_sise", 64, "data.image_sise: unknown key"),
        ("data.image_size", "big", "data.image_size: expected an integer"),
        ("data.on_unknown", "ignore", "data.on_unknown: expected one of"),
        (
            "taxonomy.attributes.0.values",
            ["red", "RED"],
            "taxonomy.attributes[0].values: value 'red' is listed twice",
        ),
        (
            "taxonomy.attributes.1.applies_to",
            ["shoe"],
            "taxonomy.attributes[1].applies_to: unknown category 'shoe'",
        ),
        (
            "taxonomy.attributes.0.merge",
            {"crimson": "scarlet"},
            "taxonomy.attributes[0].merge.crimson",
        ),
        (
            "taxonomy.attributes.0.exclusive",
            "yes",
            "taxonomy.attributes[0].exclusive: expected true or false",
        ),
        ("taxonomy.attributes.0.name", "embedding", "taxonomy.attributes[0].name"),
        ("taxonomy.categories", ["bag", "Bag"], "taxonomy.categories: value 'bag' is listed twice"),
        ("taxonomy.attributes.2.weight", -1, "taxonomy.attributes[2].weight: expected >= 0"),
        ("data.splits", {"val_fraction": 0.6, "test_fraction": 0.5}, "data.splits"),
    ],
)
def test_invalid_config_names_key_path(path, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(with_change(path, value))


def test_unknown_section_and_missing_section():
    with pytest.raises(ConfigError, match="trian: unknown section"):
        config_from_dict({**copy.deepcopy(BASE), "trian": {}})
    with pytest.raises(ConfigError, match="taxonomy: required section is missing"):
        config_from_dict({"data": {}})


def test_overrides_from_command_line_style(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    config = load_config(
        path, ["train.epochs=3", "model.attention=none", "train.optimizer.name=adamw"]
    )
    assert config.train.epochs == 3
    assert config.model.attention == "none"
    assert config.train.optimizer.name == "adamw"
    with pytest.raises(ConfigError, match="train.epochs: expected an integer"):
        load_config(path, ["train.epochs=three"])
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        load_config(path, ["train.epochs"])


def test_relative_paths_resolve_against_config_folder_and_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    config = load_config(path)
    assert config.manifest_path == tmp_path / "labels.csv"
    saved = tmp_path / "run" / "config.yaml"
    saved.parent.mkdir()
    save_config(config, saved)
    again = load_config(saved)
    assert again.manifest_path == (tmp_path / "labels.csv").resolve()
    assert again.taxonomy == config.taxonomy and again.train == config.train


def test_every_shipped_config_loads():
    from pathlib import Path

    configs = sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml"))
    assert configs, "configs/ holds no YAML"
    for path in configs:
        load_config(path)
