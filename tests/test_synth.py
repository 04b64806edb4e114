"""Tests of the synthetic catalog: determinism, labels that match the pixels, realism knobs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kattr.cli.data_synth import add_parser
from kattr.config import load_config
from kattr.labels import encode_labels, image_paths, is_blank, read_manifest
from kattr.synth import (
    COLOURS,
    OCCASIONS,
    SLEEVE_CATEGORIES,
    SynthError,
    generate_catalog,
)

SIZE = 64
ATTRIBUTES = ("colour", "pattern", "sleeve", "occasion")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return generate_catalog(
        tmp_path_factory.mktemp("synth") / "catalog", count=240, seed=3, image_size=SIZE,
        missing_rate=0.2, noise_rate=0.1, corrupt=3,
    )


@pytest.fixture(scope="module")
def truth(catalog) -> pd.DataFrame:
    frame = pd.read_csv(catalog.truth_path, dtype=str, keep_default_na=False)
    for column in frame.columns:
        if column.endswith(("_blanked", "_noisy")):
            frame[column] = frame[column] == "True"
    return frame


@pytest.fixture(scope="module")
def regions(catalog) -> dict:
    return json.loads(catalog.regions_path.read_text())


def _valid_rows(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[truth["corrupt"] == ""]


def _pixels(catalog, name: str) -> np.ndarray:
    with Image.open(catalog.root / name) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def _crop(pixels: np.ndarray, box: list[int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return pixels[y0:y1, x0:x1]


def _distance_to_white(pixels: np.ndarray) -> np.ndarray:
    return np.linalg.norm(255.0 - pixels, axis=-1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_gives_identical_files(tmp_path):
    first = generate_catalog(tmp_path / "a", count=30, seed=5, missing_rate=0.2, corrupt=3)
    second = generate_catalog(tmp_path / "b", count=30, seed=5, missing_rate=0.2, corrupt=3)
    other = generate_catalog(tmp_path / "c", count=30, seed=6, missing_rate=0.2, corrupt=3)
    first_files = _files(first.root)
    assert len(first_files) == 30 + 3 + 4
    assert first_files == _files(second.root)
    assert first.manifest_path.read_bytes() != other.manifest_path.read_bytes()
    assert first_files["images/00000.jpg"] != _files(other.root)["images/00000.jpg"]


def test_config_loads_and_labels_encode(catalog, truth):
    config = load_config(catalog.config_path)
    assert config.data.image_size == SIZE
    frame = read_manifest(config.manifest_path)
    encoded = encode_labels(frame, config.taxonomy, config.data.on_unknown)
    assert len(encoded.rows) == len(frame) == 243
    assert all(Path(p).is_file() for p in image_paths(frame, config))
    for attribute in config.taxonomy.attributes:
        target = encoded.targets[attribute.name]
        assert target.shape == (len(frame), len(attribute.values))
        applies = frame["category"].isin(attribute.applies_to or config.taxonomy.categories)
        blank = frame[attribute.source_column].map(is_blank)
        np.testing.assert_array_equal(np.all(target == -1, axis=1), applies & blank)
        np.testing.assert_array_equal(np.all(target == 0, axis=1), ~applies)
    assert set(frame["split"]) == {"train", "val", "test"}
    # The product-type head: one-hot over the categories, from the category column.
    product_type = config.taxonomy.category_attribute
    assert product_type.name == "product_type" and product_type.source_column == "category"
    np.testing.assert_array_equal(
        encoded.targets["product_type"].argmax(axis=1),
        frame["category"].map(config.taxonomy.categories.index).to_numpy(),
    )


def test_colour_label_matches_mean_garment_colour(catalog, truth, regions):
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    names = list(COLOURS)
    for row in _valid_rows(truth).itertuples():
        body = _crop(_pixels(catalog, row.image), regions[row.image]["colour"][0])
        garment = body[_distance_to_white(body) > 100]  # leaves out background and pattern ink
        mean = garment.mean(axis=0)
        nearest = names[int(np.argmin(np.linalg.norm(palette - mean, axis=1)))]
        assert nearest == row.colour, (row.image, mean)


def test_sleeve_label_matches_drawn_arms_and_is_blank_elsewhere(catalog, truth, regions):
    manifest = read_manifest(catalog.manifest_path)
    expected_fill = {"sleeveless": (0.0, 0.1), "short": (0.2, 0.6), "long": (0.85, 1.0)}
    for row in _valid_rows(truth).itertuples():
        if row.category not in SLEEVE_CATEGORIES:
            assert row.sleeve == "" and "sleeve" not in regions[row.image]
            continue
        pixels = _pixels(catalog, row.image)
        for box in regions[row.image]["sleeve"]:
            filled = np.mean(_distance_to_white(_crop(pixels, box)) > 100)
            low, high = expected_fill[row.sleeve]
            assert low <= filled <= high, (row.image, row.sleeve, filled)
    non_tops = ~manifest["category"].isin(SLEEVE_CATEGORIES)
    assert non_tops.any() and manifest.loc[non_tops, "sleeve"].isna().all()


def _pattern_seen(body: np.ndarray) -> str:
    """Reads the pattern from the central half of a rectangular body."""
    height, width = body.shape[:2]
    centre = body[height // 4: 3 * height // 4, width // 4: 3 * width // 4]
    ink = _distance_to_white(centre) < 80
    row_share = ink.mean(axis=1)
    mixed_rows = np.mean((row_share > 0.15) & (row_share < 0.85))
    if ink.mean() < 0.03:
        return "solid"
    if mixed_rows < 0.2:
        return "striped"
    return "checked" if ink.mean() > 0.44 else "dotted"


def test_pattern_label_matches_drawn_pattern(catalog, truth, regions):
    rows = _valid_rows(truth)
    rows = rows[rows["category"].isin(["tshirt", "bag"])]  # bodies that fill their box
    assert set(rows["pattern"]) == {"solid", "striped", "checked", "dotted"}
    for row in rows.itertuples():
        body = _crop(_pixels(catalog, row.image), regions[row.image]["pattern"][0])
        assert _pattern_seen(body) == row.pattern, row.image


def test_occasion_marks_match_labels(catalog, truth, regions):
    seen = {}
    for row in _valid_rows(truth).itertuples():
        band = _pixels(catalog, row.image)[: int(0.2 * SIZE)]
        dark = np.all(band < 100, axis=-1)
        thirds = {i for i, part in enumerate(np.array_split(dark, 3, axis=1)) if part.sum() > 10}
        seen[row.image] = (set(row.occasion.split("|")), thirds)
        assert len(regions[row.image]["occasion"]) == len(thirds)
    slot = {}
    for values, thirds in seen.values():
        assert len(values) == len(thirds)
        if len(values) == 1:
            slot.setdefault(next(iter(values)), set()).update(thirds)
    assert sorted(slot) == sorted(OCCASIONS)
    assert all(len(thirds) == 1 for thirds in slot.values())
    assert len({next(iter(t)) for t in slot.values()}) == len(OCCASIONS)
    for values, thirds in seen.values():
        assert thirds == {next(iter(slot[v])) for v in values}


def test_missing_and_noise_rates_are_honoured(catalog, truth):
    manifest = read_manifest(catalog.manifest_path)
    applicable = blank = noisy = 0
    for attribute in ATTRIBUTES:
        applies = truth[attribute] != ""
        cells = manifest[attribute]
        blanked = cells.map(is_blank) & applies
        np.testing.assert_array_equal(blanked, truth[f"{attribute}_blanked"])
        differs = applies & ~blanked & (cells.fillna("") != truth[attribute])
        np.testing.assert_array_equal(differs, truth[f"{attribute}_noisy"])
        applicable += applies.sum()
        blank += blanked.sum()
        noisy += differs.sum()
    assert abs(blank / applicable - 0.2) < 0.05
    assert abs(noisy / (applicable - blank) - 0.1) < 0.04


def test_value_frequencies_are_long_tailed(tmp_path, truth):
    colour_counts = truth["colour"].value_counts()
    assert colour_counts.max() >= 3 * colour_counts.min()
    flat = generate_catalog(tmp_path / "flat", count=300, imbalance=0.0)
    flat_counts = pd.read_csv(flat.truth_path)["colour"].value_counts()
    assert flat_counts.max() < 2 * flat_counts.min()


def test_corrupt_files_cannot_be_decoded(catalog, truth):
    import tensorflow as tf

    corrupt = truth[truth["corrupt"] != ""]
    assert sorted(corrupt["image"]) == sorted(catalog.corrupt_images)
    assert set(corrupt["corrupt"]) == {"random_bytes", "truncated_jpeg", "empty"}
    for name in catalog.corrupt_images:
        path = catalog.root / name
        with pytest.raises(OSError), Image.open(path) as image:
            image.load()
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.io.decode_image(tf.io.read_file(str(path)), channels=3)
    for name in _valid_rows(truth)["image"][:40]:
        decoded = tf.io.decode_image(tf.io.read_file(str(catalog.root / name)), channels=3)
        assert decoded.shape == (SIZE, SIZE, 3)
        assert decoded[0, 0].numpy().tolist() == [255, 255, 255]  # RGBA PNGs included


def test_images_mix_formats_and_regions_lie_inside(catalog, truth, regions):
    modes = set()
    for name in _valid_rows(truth)["image"]:
        with Image.open(catalog.root / name) as image:
            modes.add((image.format, image.mode))
            assert image.size == (SIZE, SIZE)
        for boxes in regions[name].values():
            for x0, y0, x1, y1 in boxes:
                assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
    assert {("JPEG", "RGB"), ("PNG", "RGB"), ("PNG", "RGBA")} <= modes
    assert sorted(regions) == sorted(_valid_rows(truth)["image"])


def test_splits_are_stratified_by_category(truth):
    shares = truth["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.7) < 0.03 and abs(shares["val"] - 0.15) < 0.03
    for category, rows in truth.groupby("category"):
        assert (rows["split"] == "train").any(), category


def test_replaces_only_a_previous_catalog(tmp_path):
    target = tmp_path / "catalog"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(SynthError, match="not empty"):
        generate_catalog(target, count=5)
    with pytest.raises(SynthError, match="not a synthetic catalog"):
        generate_catalog(target, count=5, overwrite=True)
    assert (target / "notes.txt").read_text() == "keep me"
    (target / "notes.txt").unlink()
    generate_catalog(target, count=5)  # an empty folder is filled
    catalog = generate_catalog(target, count=8, overwrite=True)
    assert len(read_manifest(catalog.manifest_path)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog"]  # no staging left over


@pytest.mark.parametrize(
    ("argument", "value"),
    [("count", 0), ("image_size", 16), ("missing_rate", 1.0), ("noise_rate", -0.1)],
)
def test_rejects_arguments_out_of_range(tmp_path, argument, value):
    with pytest.raises(SynthError, match=f"Received: {argument}="):
        generate_catalog(tmp_path / "catalog", **{argument: value})
    assert not (tmp_path / "catalog").exists()


def test_cli_writes_catalog_and_prints_summary(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="kattr-data")
    add_parser(parser.add_subparsers(dest="command", required=True))
    out_dir = tmp_path / "demo"
    args = parser.parse_args(
        ["synth", str(out_dir), "--count", "12", "--seed", "1", "--image-size", "48",
         "--missing-rate", "0", "--corrupt", "2"]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "12 images (+2 corrupt)" in printed and str(out_dir / "labels.csv") in printed
    assert len(read_manifest(out_dir / "labels.csv")) == 14
    assert load_config(out_dir / "config.yaml").data.image_size == 48
    with pytest.raises(SynthError):
        args.func(parser.parse_args(["synth", str(out_dir)]))
