"""Label statistics: state counts and value frequencies on a hand-made manifest, charts, CLI."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from PIL import Image

from kattr.cli.data import main
from kattr.config import config_from_dict
from kattr.stats import (
    attribute_state_counts,
    compute_attribute_stats,
    format_stats,
    plot_attribute_stats,
)

TAXONOMY = {
    "category_column": "category",
    "categories": ["shirt", "shoe"],
    "attributes": [
        {"name": "colour", "values": ["red", "blue", "green"], "merge": {"navy": "blue"}},
        {"name": "pattern", "values": ["solid", "striped"], "applies_to": ["shirt"]},
        {"name": "occasion", "values": ["casual", "party"], "exclusive": False},
    ],
}

# Expected states, counted by hand:
#   colour:   labelled rows 1,2,3,5; missing 4 (blank), 6 (unknown "purple")
#   pattern:  labelled 1,2; missing 3 (shirt, blank), 6 (blank category: applicability unknown);
#             not applicable 4,5 (shoes, even with a value on row 5)
#   occasion: labelled 1,3,5; missing 2,4,6
#   product_type (the category, taxonomy.category_output): labelled 1-5; missing 6 (blank)
MANIFEST = pd.DataFrame(
    {
        "image": [f"{i}.png" for i in range(1, 7)],
        "category": ["shirt", "Shirt", "shirt", "shoe", "shoe", None],
        "colour": ["red", "Navy", "blue", None, "red", "purple"],
        "pattern": ["striped", "striped", None, None, "solid", None],
        "occasion": ["casual|party", None, "party", "", "casual", None],
    }
)


@pytest.fixture()
def taxonomy():
    return config_from_dict({"data": {}, "taxonomy": TAXONOMY}).taxonomy


def test_state_counts(taxonomy):
    states = attribute_state_counts(MANIFEST, taxonomy).set_index("attribute")
    assert states.loc["colour"].to_dict() == {"labelled": 4, "missing": 2, "not_applicable": 0}
    assert states.loc["pattern"].to_dict() == {"labelled": 2, "missing": 2, "not_applicable": 2}
    assert states.loc["occasion"].to_dict() == {"labelled": 3, "missing": 3, "not_applicable": 0}
    assert states.loc["product_type"].to_dict() == {
        "labelled": 5, "missing": 1, "not_applicable": 0
    }
    assert (states.sum(axis=1) == len(MANIFEST)).all()


def test_value_counts_list_every_value_in_taxonomy_order(taxonomy):
    values = compute_attribute_stats(MANIFEST, taxonomy)
    assert list(values.columns) == ["attribute", "value", "count"]
    counts = {(a, v): c for a, v, c in values.itertuples(index=False)}
    assert counts == {
        ("colour", "red"): 2,
        ("colour", "blue"): 2,
        ("colour", "green"): 0,
        ("pattern", "solid"): 0,
        ("pattern", "striped"): 2,  # the shoe's "solid" is ignored
        ("occasion", "casual"): 2,
        ("occasion", "party"): 2,
        ("product_type", "shirt"): 3,
        ("product_type", "shoe"): 2,
    }
    assert list(values["value"][:3]) == ["red", "blue", "green"]


def test_format_stats_table(taxonomy):
    text = format_stats(
        compute_attribute_stats(MANIFEST, taxonomy), attribute_state_counts(MANIFEST, taxonomy)
    )
    header, pattern_row = text.splitlines()[0], text.splitlines()[2]
    assert header.split() == ["attribute", "labelled", "missing", "not", "applicable"]
    assert pattern_row.split() == ["pattern", "2", "2", "2"]
    assert "colour (4 labelled rows; share of labelled rows)" in text
    colour_block = text.split("colour (")[1].split("\n\n")[0].splitlines()
    assert colour_block[2].split() == ["red", "2", "50.0%"]
    assert colour_block[-1].split() == ["green", "0", "0.0%"]


def test_charts_one_png_per_attribute_with_several_frames(taxonomy, tmp_path):
    after = MANIFEST.iloc[:3]
    paths = plot_attribute_stats(
        {
            "before": compute_attribute_stats(MANIFEST, taxonomy),
            "after": compute_attribute_stats(after, taxonomy),
        },
        tmp_path / "charts",
        states={
            "before": attribute_state_counts(MANIFEST, taxonomy),
            "after": attribute_state_counts(after, taxonomy),
        },
    )
    assert [p.name for p in paths] == [
        "colour.png", "pattern.png", "occasion.png", "product_type.png"
    ]
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(
        p.name for p in paths
    )  # no temporary files left behind
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width > 300 and image.height > 100


def test_charts_reject_frames_that_are_not_statistics(taxonomy, tmp_path):
    with pytest.raises(ValueError, match="compute_attribute_stats"):
        plot_attribute_stats({"catalog": MANIFEST}, tmp_path)
    values = compute_attribute_stats(MANIFEST, taxonomy)
    with pytest.raises(ValueError, match="same names"):
        plot_attribute_stats({"catalog": values}, tmp_path, states={"other": values})


def test_cli_prints_the_table_and_writes_charts(tmp_path, capsys):
    MANIFEST.to_csv(tmp_path / "labels.csv", index=False)
    before = (tmp_path / "labels.csv").read_bytes()
    config = {"data": {"manifest": "labels.csv", "image_size": 32}, "taxonomy": TAXONOMY}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["stats", str(tmp_path / "config.yaml")]) == 0
    output = capsys.readouterr().out
    assert "6 rows" in output and "wrote 4 chart(s)" in output
    assert sorted(p.name for p in (tmp_path / "stats").glob("*.png")) == [
        "colour.png",
        "occasion.png",
        "pattern.png",
        "product_type.png",
    ]
    assert main(["stats", str(tmp_path / "config.yaml"), "--output", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 4
    assert (tmp_path / "labels.csv").read_bytes() == before


def test_stats_cli_before_after_view(tmp_path, capsys):
    """`--before` prints both tables and draws both series (one chart per attribute)."""
    import yaml

    from kattr.cli.data import main

    (tmp_path / "before.csv").write_text(
        "image,category,colour\na.jpg,shirt,red\nb.jpg,shirt,blue\n"
    )
    (tmp_path / "after.csv").write_text("image,category,colour\na.jpg,shirt,red\n")
    config = {
        "data": {"manifest": "after.csv"},
        "taxonomy": {
            "category_column": "category",
            "categories": ["shirt"],
            "attributes": [{"name": "colour", "values": ["red", "blue"]}],
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    status = main(
        [
            "stats",
            str(tmp_path / "c.yaml"),
            "--before",
            str(tmp_path / "before.csv"),
            "--output",
            str(tmp_path / "charts"),
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert (
        "before:" in printed and "2 rows" in printed and "after:" in printed and "1 rows" in printed
    )
    assert (tmp_path / "charts" / "colour.png").stat().st_size > 0
