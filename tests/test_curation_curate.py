"""End-to-end tests of `kattr.curation.curate` and `kattr-data curate` on a generated catalog."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageEnhance

from kattr.cli.data import main as data_main
from kattr.config import load_config
from kattr.curation import SPLITS, CurationError, curate
from kattr.labels import encode_labels, read_manifest

SIDE = 48
DISTINCT = 36
COLOURS = ["red", "blue", "green"]


def _pattern(seed: int, size: tuple[int, int] = (SIDE, SIDE)) -> Image.Image:
    cells = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize(size, Image.Resampling.NEAREST)


def _row(image: str, index: int, **changes) -> dict:
    row = {
        "image": image,
        "category": "Top" if index % 2 else "shoe",
        "colour": ["Red", "BLUE ", "navy", "green"][index % 4],
        "occasion": ["casual", "party", "casual|party"][index % 3],
        "pattern": "striped" if index % 2 else None,
        "note": f"product {index}",
    }
    return {**row, **changes}


def _write_catalog(root: Path) -> Path:
    """Writes images, labels.csv and config.yaml; returns the config path."""
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for index in range(DISTINCT):
        _pattern(index).save(images / f"p{index}.png")
        rare = {"colour": "Yellow"} if index in (10, 11) else {}
        rows.append(_row(f"images/p{index}.png", index, **rare))
    # Exact duplicate (same pixels, other file), agreeing labels.
    shutil.copy(images / "p0.png", images / "p0_copy.png")
    rows.append(_row("images/p0_copy.png", 0))
    # Near duplicate: brighter and re-encoded as JPEG, agreeing labels, larger (so it is kept).
    bright = ImageEnhance.Brightness(_pattern(1).resize((2 * SIDE, 2 * SIDE))).enhance(1.05)
    bright.save(images / "p1_near.jpg", quality=80)
    rows.append(_row("images/p1_near.jpg", 1))
    # Two copies of p2 whose colour disagrees with it: a 2-to-1 majority for green.
    for copy in ("a", "b"):
        shutil.copy(images / "p2.png", images / f"p2_{copy}.png")
        rows.append(_row(f"images/p2_{copy}.png", 2, colour="green"))
    # Invalid images.
    (images / "empty.jpg").write_bytes(b"")
    (images / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    _pattern(50).save(images / "whole.jpg", quality=90)
    whole = (images / "whole.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    _pattern(51, (16, 16)).save(images / "tiny.png")
    _pattern(52, (200, 40)).save(images / "wide.png")
    for name in ("empty.jpg", "noise.jpg", "truncated.jpg", "tiny.png", "wide.png", "gone.jpg"):
        rows.append(_row(f"images/{name}", len(rows)))
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    config = {
        "data": {
            "manifest": "labels.csv", "image_root": ".", "image_size": 32,
            "splits": {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 3},
        },
        "taxonomy": {
            "category_column": "category",
            "categories": ["top", "shoe"],
            "attributes": [
                {"name": "colour", "values": ["red", "blue", "green", "yellow", "other"],
                 "merge": {"navy": "blue"}},
                {"name": "occasion", "values": ["casual", "party"], "exclusive": False},
                {"name": "pattern", "values": ["striped", "solid"], "applies_to": ["top"]},
            ],
        },
        "curation": {
            "min_side": 24, "max_aspect_ratio": 3.0, "near_duplicate_distance": 10, "workers": 2,
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_catalog(tmp_path_factory.mktemp("curation") / "catalog")


@pytest.fixture(scope="module")
def curated(catalog: Path, tmp_path_factory: pytest.TempPathFactory):
    before = _fingerprint(catalog.parent)
    output = tmp_path_factory.mktemp("runs") / "curated"
    result = curate(load_config(catalog), output, progress=False)
    return result, output, before


def test_invalid_images_are_removed_and_named(curated):
    _, output, _ = curated
    removed = read_manifest(output / "removed.csv").set_index("image")
    expected = {
        "images/empty.jpg": "empty_file",
        "images/noise.jpg": "unreadable",
        "images/truncated.jpg": "truncated",
        "images/tiny.png": "too_small",
        "images/wide.png": "extreme_aspect_ratio",
        "images/gone.jpg": "missing_file",
    }
    assert {image: removed.loc[image, "reason"] for image in expected} == expected
    kept = set(read_manifest(output / "labels.csv")["image"])
    assert kept.isdisjoint(expected)


def test_exact_and_near_duplicates_are_grouped_and_one_is_kept(curated):
    result, output, _ = curated
    groups = read_manifest(output / "duplicates.csv")
    members = groups.groupby("group")["image"].apply(set).tolist()
    assert {"images/p0.png", "images/p0_copy.png"} in members
    assert {"images/p1.png", "images/p1_near.jpg"} in members
    assert {"images/p2.png", "images/p2_a.png", "images/p2_b.png"} in members
    assert len(members) == 3  # no distinct pattern was grouped
    kept = read_manifest(output / "labels.csv")["image"].tolist()
    assert "images/p1_near.jpg" in kept and "images/p1.png" not in kept  # larger one kept
    assert sum(image in kept for image in ("images/p0.png", "images/p0_copy.png")) == 1
    assert result.exact_duplicate_groups == 2 and result.near_duplicate_groups == 1


def test_conflicting_labels_keep_the_majority(curated):
    result, output, _ = curated
    frame = read_manifest(output / "labels.csv")
    p2 = frame[frame["image"].isin(["images/p2.png", "images/p2_a.png", "images/p2_b.png"])]
    assert len(p2) == 1 and p2["colour"].iloc[0] == "green"
    assert result.conflict_groups == 1
    report = json.loads((output / "report.json").read_text())
    assert report["duplicates"]["conflicts_by_column"] == {"colour": 1}


def test_counts_add_up_and_every_removed_row_is_listed(curated, catalog):
    result, output, _ = curated
    source = read_manifest(catalog.parent / "labels.csv")
    kept = read_manifest(output / "labels.csv")
    removed = read_manifest(output / "removed.csv")
    assert result.input_rows == len(source) == len(kept) + len(removed)
    assert sum(result.removed.values()) == len(removed)
    assert sorted(kept["note"].tolist() + removed["note"].tolist()) == sorted(source["note"])


def test_merges_are_applied_and_the_manifest_encodes(curated, catalog):
    result, output, _ = curated
    frame = read_manifest(output / "labels.csv")
    assert "navy" not in set(frame["colour"]) and "blue" in set(frame["colour"])
    assert result.merged_cells == sum(
        c.strip().lower() == "navy" for c in read_manifest(catalog.parent / "labels.csv")["colour"]
    )
    config = load_config(output / "config.yaml")
    assert config.manifest_path == output / "labels.csv"
    assert config.image_root == catalog.parent.resolve()
    encoded = encode_labels(read_manifest(config.manifest_path), config.taxonomy)
    assert len(encoded.rows) == len(frame)


def test_split_column_and_sides(curated):
    result, output, _ = curated
    frame = read_manifest(output / "labels.csv")
    assert set(frame["split"]) == set(SPLITS)
    assert result.split_sizes == frame["split"].value_counts().to_dict()
    groups = read_manifest(output / "duplicates.csv")
    kept = frame.set_index("image")["split"]
    for _, members in groups.groupby("group"):
        sides = set(members["split"])
        assert len(sides) == 1
        kept_image = members.loc[members["action"] == "kept", "image"].iloc[0]
        assert sides == {kept[kept_image]}


def test_inputs_are_unchanged(curated, catalog):
    _, _, before = curated
    assert _fingerprint(catalog.parent) == before


def test_report_and_stats_are_written(curated):
    result, output, _ = curated
    report = json.loads((output / "report.json").read_text())
    assert report["rows"]["kept"] == result.kept_rows
    assert report["invalid_images"]["count"] == result.invalid_images == 6
    markdown = (output / "report.md").read_text()
    assert "truncated" in markdown and "## Splits" in markdown
    assert {p.name for p in (output / "stats").glob("*.png")} == {
        "colour.png", "occasion.png", "pattern.png", "product_type.png"
    }


def test_same_seed_gives_the_same_output(catalog, curated, tmp_path):
    _, output, _ = curated
    config = load_config(catalog, ["curation.workers=1"])
    again = curate(config, tmp_path / "again", progress=False)
    assert (tmp_path / "again" / "labels.csv").read_text() == (output / "labels.csv").read_text()
    other_seed = load_config(catalog, ["data.splits.seed=4", "curation.workers=1"])
    other = curate(other_seed, tmp_path / "other", progress=False)
    assert other.kept_rows == again.kept_rows
    splits = [read_manifest(p / "labels.csv")["split"] for p in (output, tmp_path / "other")]
    assert not splits[0].equals(splits[1])


def test_drop_policy_removes_conflicting_groups(catalog, tmp_path):
    config = load_config(catalog, ["curation.conflict_policy=drop", "curation.workers=1"])
    result = curate(config, tmp_path / "out", progress=False)
    assert result.removed["conflicting_duplicates"] == 3
    kept = set(read_manifest(tmp_path / "out" / "labels.csv")["image"])
    assert kept.isdisjoint({"images/p2.png", "images/p2_a.png", "images/p2_b.png"})


def test_rare_values_merge_into_the_fallback(catalog, tmp_path):
    config = load_config(catalog, [
        "curation.min_count=3", "curation.rare_policy=fallback",
        "curation.rare_fallback={colour: other}", "curation.workers=1",
    ])
    result = curate(config, tmp_path / "out", progress=False)
    frame = read_manifest(tmp_path / "out" / "labels.csv").set_index("image")
    assert frame.loc[["images/p10.png", "images/p11.png"], "colour"].tolist() == ["other"] * 2
    assert "yellow" not in set(frame["colour"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rare_values"]["values"] == [
        {"attribute": "colour", "value": "yellow", "count": 2, "action": "fallback: other",
         "cells": 2, "kept_cells": 0}
    ]
    assert result.rare_values == 1 and result.rare_cells_changed == 2


def test_unknown_fallback_attribute_is_rejected_before_any_work(catalog, tmp_path):
    config = load_config(catalog, ["curation.rare_fallback={size: xl}"])
    with pytest.raises(CurationError, match="rare_fallback.size"):
        curate(config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite_unless_told(catalog, tmp_path):
    config = load_config(catalog, ["curation.workers=1"])
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(CurationError, match="not empty"):
        curate(config, output, progress=False)
    assert (output / "keep.txt").read_text() == "mine"
    curate(config, output, progress=False, overwrite=True)
    assert not (output / "keep.txt").exists() and (output / "labels.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_refuses_an_output_folder_holding_the_inputs(catalog):
    config = load_config(catalog, ["curation.workers=1"])
    with pytest.raises(CurationError, match="holds the input"):
        curate(config, catalog.parent, progress=False, overwrite=True)


def test_cli_curates_and_reports(catalog, tmp_path, capsys):
    status = data_main([
        "curate", str(catalog), "--output", str(tmp_path / "cli"), "--quiet",
        "--set", "curation.workers=1",
    ])
    assert status == 0
    out = capsys.readouterr().out
    assert "rows in" in out and "duplicate groups: 3" in out
    assert data_main(["curate", str(catalog), "--output", str(tmp_path / "cli"), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
