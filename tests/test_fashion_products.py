"""Fashion-products preparation: the pattern word rule, the raw folder left alone, the config.

A tiny raw folder in the sample's layout is generated here; the real sample is not used.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from kattr.cli.data import main
from kattr.config import canonical, load_config
from kattr.fashion_products import (
    PATTERN_WORDS,
    PreparationError,
    mine_pattern,
    prepare_fashion_products,
)
from kattr.labels import read_manifest

CONFIG_PATH = Path(__file__).resolve().parents[1] / "configs" / "fashion-products.yaml"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Mark Taylor Men Pink Striped Shirt", "striped"),
        ("Turtle Men Stripes Maroon Ties", "striped"),
        ("UCB Men Small CHECKS Yellow Shirt", "checked"),
        ("Wrangler Women Plaid Shirt", "checked"),
        ("Alma Women Beige Printed Kurta", "printed"),
        ("Puma Men Story Graphic Navy Blue T-shirt", "printed"),
        ("Nike Men Solid Grey T-shirt", "solid"),
        ("Indigo Nation Men Plain Orange Shirts", "solid"),
        ("Femella Women Grey Polka-Dotted Dress", "dotted"),
        ("Vishudh Women Flower Print Brown Kurta", "floral"),  # motif beats "print"
        ("109F Women Blue & Green Polka Dot Print Tunic", "dotted"),
        ("Solid Shirt with Striped Collar", "striped"),  # solid only without a motif word
        ("Blueprint Checkmate Tee", None),  # words, not substrings
        ("Nike Men Black T-shirt", None),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_pattern_rule(name, expected):
    assert mine_pattern(name) == expected


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


RAW = pd.DataFrame({
    "image": [f"images/{i}.jpg" for i in range(4)],
    "id": ["0", "1", "2", "3"],
    "gender": ["Men", "Women", "Men", "Unisex"],
    "articleType": ["Shirts", "Tops", "Casual Shoes", "Watches"],
    "baseColour": ["Navy Blue", "Red", "Black", "Steel"],
    "season": ["Summer", "Fall", "Winter", None],
    "usage": ["Formal", "Casual", "Casual", "Casual"],
    "productDisplayName": [
        "Arrow Men Blue Checked Shirt", "Jealous 21 Women Red Top",
        "Converse Men Big Check Shoe", "Fastrack Men Steel Watch",
    ],
})


@pytest.fixture()
def raw_folder(tmp_path) -> Path:
    folder = tmp_path / "raw"
    (folder / "images").mkdir(parents=True)
    for i in range(len(RAW)):
        (folder / "images" / f"{i}.jpg").write_bytes(_jpeg(i))
    RAW.to_csv(folder / "labels.csv", index=False)
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_prepare_adds_pattern_and_leaves_the_raw_folder_alone(raw_folder, tmp_path):
    before = _digest(raw_folder)
    path = prepare_fashion_products(
        raw_folder, tmp_path / "out", pattern_applies_to=["shirts", "TOPS"]
    )
    assert path == tmp_path / "out" / "labels.csv"
    assert _digest(raw_folder) == before
    prepared = read_manifest(path)
    assert list(prepared.columns) == [*RAW.columns, "pattern"]
    # shirt: checked; top: no pattern word; shoe: "Check" is a model name, not applicable here
    assert prepared["pattern"].tolist()[:1] == ["checked"]
    assert prepared["pattern"].iloc[1:].isna().all()
    assert prepared["image"].tolist() == RAW["image"].tolist()  # still relative to the raw folder
    everywhere = read_manifest(prepare_fashion_products(raw_folder, tmp_path / "all"))
    assert everywhere["pattern"].tolist()[2] == "checked"


def test_prepare_refuses_to_write_into_the_raw_folder(raw_folder):
    with pytest.raises(PreparationError, match="outside the raw folder"):
        prepare_fashion_products(raw_folder, raw_folder / "prepared")
    assert not (raw_folder / "prepared").exists()


def test_prepare_names_missing_columns(tmp_path):
    (tmp_path / "raw").mkdir()
    RAW.drop(columns="productDisplayName").to_csv(tmp_path / "raw" / "labels.csv", index=False)
    with pytest.raises(PreparationError, match="productDisplayName"):
        prepare_fashion_products(tmp_path / "raw", tmp_path / "out")


def test_real_catalog_config_matches_the_rule():
    config = load_config(CONFIG_PATH)
    attributes = {a.name: a for a in config.taxonomy.attributes}
    assert config.taxonomy.category_column == "articleType"
    assert set(attributes) >= {"gender", "colour", "season", "usage", "pattern"}
    assert set(attributes["pattern"].values) == set(PATTERN_WORDS)
    assert attributes["colour"].merge["navy blue"] == "blue"
    assert "casual shoes" not in attributes["pattern"].applies_to
    assert attributes["product_type"].values == config.taxonomy.categories
    # The from-scratch recipe: 60x80 photos at 64x50, a 4x4 token map through output stride 16.
    assert config.data.image_shape == (64, 50) and config.model.output_stride == 16
    assert config.model.weights is None


def test_cli_prepare_then_validate(raw_folder, tmp_path, capsys):
    data = yaml.safe_load(CONFIG_PATH.read_text())
    data["data"]["manifest"] = str(tmp_path / "work" / "labels.csv")
    data["data"]["image_root"] = str(raw_folder)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    assert main(["prepare-fashion-products", str(config_path)]) == 0
    assert "checked    1" in capsys.readouterr().out
    prepared = read_manifest(tmp_path / "work" / "labels.csv")
    assert [canonical(v) for v in prepared["pattern"].dropna()] == ["checked"]
    assert main(["validate", str(config_path)]) == 0
    assert "OK: 0 error(s), 0 warning(s)" in capsys.readouterr().out
