"""Overlays, contact sheets, the HTML gallery and `kattr-explain` (untrained model, tiny images)."""

from __future__ import annotations

import html.parser
import json
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

from kattr.cli import explain as explain_cli
from kattr.config import load_config, save_config
from kattr.explain import METHODS, Explainer, Explanation
from kattr.explain.gallery import GalleryImage, GalleryOverlay, write_gallery
from kattr.explain.inputs import read_images
from kattr.explain.render import DEFAULT_COLORMAP, render_contact_sheet, render_overlay
from kattr.explain.report import explain_files
from kattr.model import build_model
from kattr.run_dir import RunDir, write_json

# The tiny test backbone: rendering only needs heatmaps of some model.
SMALL_MODEL = [
    "model.backbone=tiny_cnn", "model.attention_width=32", "model.feedforward_width=32",
    "model.branch_units=[16]",
]


@pytest.fixture(scope="module")
def run_dir(synthetic_catalog, tmp_path_factory):
    """A run directory as kattr-train leaves it, holding an untrained model (no training)."""
    config = load_config(synthetic_catalog.config_path, SMALL_MODEL)
    keras.utils.set_random_seed(2)
    run = RunDir(tmp_path_factory.mktemp("explain") / "run")
    run.root.mkdir()
    save_config(config, run.config)
    build_model(config).save(run.model)
    # Occasion at 0 predicts all three values; colour at 1 predicts none (top value shown).
    # Thresholds must lie in (0, 1): every occasion value is decided, no colour is.
    write_json({"occasion": 1e-6, "colour": 1 - 1e-6}, run.thresholds)
    return run.root


@pytest.fixture(scope="module")
def explainer(run_dir):
    return Explainer.from_run(run_dir, batch_size=4)


@pytest.fixture(scope="module")
def image_files(synthetic_catalog):
    return sorted(synthetic_catalog.image_dir.glob("*.jpg"))[:2]


def _is_png_with_content(path) -> bool:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    return image.format == "PNG" and pixels.std() > 10


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href")]


def _links(page) -> list[str]:
    parser = _Links()
    parser.feed(page.read_text())
    return parser.links


def test_overlay_png_is_written_atomically(explainer, image_files, tmp_path):
    images = read_images(image_files[:1], explainer.image_shape).images
    explanation = explainer.explain(images, "pattern")[0]
    path = render_overlay(images[0], explanation, tmp_path / "sub" / "overlay.png")
    assert path == tmp_path / "sub" / "overlay.png"
    assert _is_png_with_content(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["overlay.png"]  # no temp file left


def test_overlay_shows_the_heatmap_in_the_colormap(tmp_path):
    image = np.full((64, 64, 3), 255.0, np.float32)
    heatmap = np.zeros((64, 64), np.float32)
    heatmap[:, 32:] = 1.0
    explanation = Explanation(0, "colour", "red", 0.9, True, "gradcam", "top_activation", heatmap)
    dark = render_overlay(image, explanation, tmp_path / "a.png", colormap="gray", alpha=1.0)
    bright = render_overlay(image, explanation, tmp_path / "b.png", colormap="gray_r", alpha=1.0)
    # The same map under inverted colormaps gives different pictures.
    assert not np.array_equal(np.asarray(Image.open(dark)), np.asarray(Image.open(bright)))


def test_unknown_colormap_is_refused(tmp_path):
    explanation = Explanation(0, "colour", "red", 0.9, True, "gradcam", "top_activation",
                              np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="unknown colormap 'rainbowish'"):
        render_overlay(np.zeros((8, 8, 3)), explanation, tmp_path / "x.png", "rainbowish")


def test_contact_sheet_has_a_panel_per_attribute(explainer, image_files, tmp_path):
    images = read_images(image_files[:1], explainer.image_shape).images
    top = [explainer.explain(images, name)[0] for name in explainer.attributes]
    labels = {"occasion": [("party", 0.61), ("sport", 0.55)]}
    path = render_contact_sheet(images[0], top, labels, tmp_path / "sheet.png", title="x.jpg")
    assert _is_png_with_content(path)
    with Image.open(path) as sheet:
        width, height = sheet.size
    assert width > 2.5 * height  # five panels (input + four attributes) in one row


def test_gallery_escapes_names_and_links_relative_files(tmp_path):
    (tmp_path / "sheets").mkdir()
    (tmp_path / "sheets" / "a.png").write_bytes(b"png")
    entry = GalleryImage("<odd> name.jpg", "sheets/a.png", [GalleryOverlay("sheets/a.png", "c")])
    page = write_gallery(tmp_path, [entry], skipped=[("bad.jpg", "cannot decode")])
    text = page.read_text()
    assert "&lt;odd&gt; name.jpg" in text and "<odd>" not in text
    assert "bad.jpg: cannot decode" in text
    assert set(_links(page)) == {"sheets/a.png"}


def test_explain_files_renders_everything_and_skips_a_broken_image(
    explainer, image_files, tmp_path
):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    output = tmp_path / "out"
    report = explain_files(explainer, [image_files[0], broken, *image_files[1:]], output)
    assert report.skipped == [(str(broken), report.skipped[0][1])]
    assert "decode" in report.skipped[0][1]
    assert len(report.sheets) == len(image_files)
    # Default: every attribute's predicted values (all three occasions), else its top value.
    per_image = [r for r in report.records if r["image"] == str(image_files[0])]
    assert sorted(r["attribute"] for r in per_image) == [
        "colour", "occasion", "occasion", "occasion", "pattern", "product_type", "sleeve"
    ]
    assert not any(r["predicted"] for r in per_image if r["attribute"] == "colour")
    links = _links(report.gallery)
    assert links, "the gallery links nothing"
    for link in links:
        assert (output / link).is_file(), link
        if link.endswith(".png"):
            assert _is_png_with_content(output / link)
    assert {r["overlay"] for r in report.records} <= set(links)
    assert json.loads((output / "explanations.json").read_text()) == report.records
    assert "broken.jpg" in report.gallery.read_text()


def test_explain_files_with_attribute_and_value(explainer, image_files, tmp_path):
    report = explain_files(explainer, image_files[:2], tmp_path, "sleeve", "long", "gradcam++")
    assert [(r["attribute"], r["value"], r["method"]) for r in report.records] == [
        ("sleeve", "long", "gradcam++")
    ] * 2
    assert len(report.sheets) == 2


def test_cli_explains_manifest_rows(run_dir, synthetic_catalog, tmp_path, capsys):
    output = tmp_path / "gallery"
    status = explain_cli.main([
        "--run", str(run_dir), "--output", str(output), "--attribute", "colour",
        "--manifest", str(synthetic_catalog.manifest_path), "--limit", "2",
    ])
    assert status == 0
    assert "open " in capsys.readouterr().out
    records = json.loads((output / "explanations.json").read_text())
    assert [r["image"] for r in records] == [
        str(synthetic_catalog.root.resolve() / f"images/{i:05d}.jpg") for i in range(2)
    ]
    assert all((output / link).is_file() for link in _links(output / "index.html"))


def test_cli_skips_an_undecodable_image(run_dir, image_files, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    copy = tmp_path / "good.jpg"
    shutil.copy(image_files[0], copy)
    status = explain_cli.main([
        "--run", str(run_dir), "--output", str(tmp_path / "out"), "--attribute", "pattern",
        str(broken), str(copy),
    ])
    assert status == 0
    err = capsys.readouterr().err
    assert f"skipped {broken}" in err
    assert len(list((tmp_path / "out" / "sheets").glob("*.png"))) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--attribute", "neck"], "unknown attribute 'neck'; expected one of ['colour', 'pattern'"),
        (["--attribute", "colour", "--value", "pink"], "expected one of ['red', 'blue', 'green'"),
        (["--layer", "nowhere"], "layer 'nowhere'"),
    ],
)
def test_cli_names_the_valid_choices(run_dir, image_files, tmp_path, capsys, arguments, message):
    status = explain_cli.main(
        ["--run", str(run_dir), "--output", str(tmp_path / "o"), *arguments, str(image_files[0])]
    )
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_needs_images_or_a_manifest(run_dir, tmp_path):
    with pytest.raises(SystemExit) as raised:
        explain_cli.main(["--run", str(run_dir), "--output", str(tmp_path)])
    assert raised.value.code == 2


def test_cli_choices_match_the_api():
    assert explain_cli.METHODS == METHODS
    assert explain_cli.DEFAULT_COLORMAP == DEFAULT_COLORMAP
