"""Config loading: typed objects, overrides and errors that name the key path."""

import copy
import re

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
        (
            "train",
            {"augmentation": {"erasing": 1.5}},
            "train.augmentation.erasing: expected a probability in [0, 1] (Received: 1.5)",
        ),
    ],
)
def test_invalid_config_names_key_path(path, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(with_change(path, value))


def test_flip_average_needs_training_on_mirror_images():
    data = {**copy.deepcopy(BASE), "model": {"flip_average": True}}
    assert config_from_dict(data).model.flip_average
    data["train"] = {"augmentation": {"horizontal_flip": False}}
    with pytest.raises(ConfigError, match="model.flip_average: expected false unless"):
        config_from_dict(data)
    data["train"] = {"augmentation": {"enabled": False}}
    with pytest.raises(ConfigError, match="model.flip_average"):
        config_from_dict(data)


def test_zoom_average_needs_zooms_the_model_trained_on():
    data = {**copy.deepcopy(BASE), "model": {"zoom_average": [0.9, 1.1]}}
    assert config_from_dict(data).model.zoom_average == [0.9, 1.1]  # default zoom: 0.2
    for zooms in ([0.7], [1.0], [0.9, 1.25]):
        data["model"]["zoom_average"] = zooms
        with pytest.raises(ConfigError, match="model.zoom_average: expected null, or factors"):
            config_from_dict(data)
    data["model"]["zoom_average"] = [0.95]
    data["train"] = {"augmentation": {"zoom": 0.0}}
    with pytest.raises(ConfigError, match=r"model.zoom_average: .*zoom: 0.0\)"):
        config_from_dict(data)
    data["train"] = {"augmentation": {"enabled": False}}
    with pytest.raises(ConfigError, match="model.zoom_average: .*enabled: False"):
        config_from_dict(data)


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


@pytest.mark.parametrize(
    ("image_size", "shape"), [(64, (64, 64)), ([128, 100], (128, 100)), ([80, 96], (80, 96))]
)
def test_image_size_is_a_square_or_height_width_and_round_trips(tmp_path, image_size, shape):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(with_change("data.image_size", image_size)))
    config = load_config(path)
    assert config.data.image_shape == shape
    saved = tmp_path / "saved.yaml"
    save_config(config, saved)
    assert yaml.safe_load(saved.read_text())["data"]["image_size"] == image_size
    again = load_config(saved)
    assert again.data.image_size == image_size and again.data.image_shape == shape


def test_image_size_override_takes_a_yaml_pair(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert load_config(path, ["data.image_size=[128, 100]"]).data.image_shape == (128, 100)


@pytest.mark.parametrize(
    ("image_size", "message"),
    [
        ([0, 5], r"data.image_size: expected every side >= 32. Received: \[0, 5\]"),
        ([128, 16], r"data.image_size: expected every side >= 32. Received: \[128, 16\]"),
        (16, "data.image_size: expected every side >= 32. Received: 16"),
        ([1, 2, 3], r"data.image_size: expected .*\[height, width\].*Received: \[1, 2, 3\]"),
        ([128], r"data.image_size: expected .*\[height, width\].*Received: \[128\]"),
        ("big", "data.image_size: expected an integer"),
        ([128, "wide"], "data.image_size: expected an integer.*'wide'"),
    ],
)
def test_bad_image_size_names_the_key(image_size, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(with_change("data.image_size", image_size))


def test_data_config_made_in_python_checks_and_keeps_a_plain_list():
    from kattr.config import DataConfig

    data = DataConfig(image_size=(128, 100))
    assert data.image_size == [128, 100] and data.image_shape == (128, 100)
    with pytest.raises(ConfigError, match="data.image_size"):
        DataConfig(image_size=[0, 5])


def test_product_type_output_is_on_by_default_and_derived_from_the_categories():
    data = with_change("taxonomy.category_merge", {"tee": "tshirt"})
    taxonomy = config_from_dict(data).taxonomy
    assert [a.name for a in taxonomy.attributes] == ["colour", "sleeve", "occasion", "product_type"]
    product_type = taxonomy.category_attribute
    assert product_type is taxonomy.attributes[-1] and taxonomy.is_category_output(product_type)
    assert product_type.values == ["tshirt", "dress", "bag"]
    assert product_type.source_column == "category" and product_type.merge == {"tee": "tshirt"}
    assert product_type.exclusive and product_type.applies_to is None
    assert [a.name for a in taxonomy.declared_attributes] == ["colour", "sleeve", "occasion"]


def test_product_type_output_name_weight_and_switching_off():
    data = with_change("taxonomy.category_output", {"name": "article_type", "weight": 0.5})
    taxonomy = config_from_dict(data).taxonomy
    assert taxonomy.attributes[-1].name == "article_type" and taxonomy.attributes[-1].weight == 0.5
    off = config_from_dict(with_change("taxonomy.category_output", None)).taxonomy
    assert [a.name for a in off.attributes] == ["colour", "sleeve", "occasion"]
    assert off.category_attribute is None


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"name": "colour"}, r"attributes\[0\].name: 'colour' is the name of the predicted"),
        ({"name": "embedding"}, "category_output.name: expected a Python identifier"),
        ({"name": "product type"}, "category_output.name: expected a Python identifier"),
        ({"weight": -1}, "category_output.weight: expected >= 0"),
        ({"names": "x"}, "category_output.names: unknown key"),
    ],
)
def test_product_type_output_errors_name_the_key(output, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(with_change("taxonomy.category_output", output))


def test_product_type_is_not_duplicated_by_a_save_and_load_round_trip(tmp_path):
    from kattr._schema import to_data
    from kattr.config import config_to_dict

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    config = load_config(path)
    saved = tmp_path / "saved.yaml"
    save_config(config, saved)
    written = yaml.safe_load(saved.read_text())["taxonomy"]
    assert [a["name"] for a in written["attributes"]] == ["colour", "sleeve", "occasion"]
    assert written["category_output"] == {"name": "product_type", "weight": 1.0}
    for _ in range(2):
        again = load_config(saved)
        assert again.taxonomy == config.taxonomy
        save_config(again, saved)
    # The full taxonomy (as in an export's kattr.json) loads to the same outputs too.
    full = config_to_dict(config)
    full["taxonomy"] = to_data(config.taxonomy)
    assert config_from_dict(full).taxonomy == config.taxonomy
