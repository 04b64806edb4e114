"""One image-format rule for `kattr-validate` and curation, and a portable core count."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from kattr._cores import available_cores
from kattr._image_formats import TRAINING_FORMATS, is_training_format
from kattr.config import load_config
from kattr.curation.hashing import inspect_images
from kattr.curation.image_checks import inspect_image
from kattr.validate import check_image, validate_catalog


def _picture(seed: int) -> Image.Image:
    cells = np.random.default_rng(seed).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((48, 40), Image.Resampling.BICUBIC)


def _mpo_bytes() -> bytes:
    """A multi-picture JPEG, as cameras write: Pillow opens it as format "MPO"."""
    buffer = io.BytesIO()
    _picture(0).save(buffer, format="MPO", save_all=True, append_images=[_picture(1)])
    return buffer.getvalue()


def _encoded(image_format: str) -> bytes:
    buffer = io.BytesIO()
    _picture(2).save(buffer, format=image_format)
    return buffer.getvalue()


def _catalog(folder: Path, files: dict[str, bytes]) -> Path:
    (folder / "images").mkdir(parents=True)
    rows = []
    for name, data in files.items():
        (folder / "images" / name).write_bytes(data)
        rows.append({"image": f"images/{name}", "category": "shirt", "colour": "red"})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    taxonomy = {"category_column": "category", "categories": ["shirt"],
                "attributes": [{"name": "colour", "values": ["red", "blue"]}]}
    config = {"data": {"manifest": "labels.csv", "image_size": 32}, "taxonomy": taxonomy}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def test_the_rule_accepts_what_training_decodes():
    assert all(is_training_format(name) for name in ("JPEG", "MPO", "PNG", "BMP", "GIF"))
    assert not any(is_training_format(name) for name in ("WEBP", "TIFF", "ICO", "", None))
    assert set(TRAINING_FORMATS) == {"JPEG", "MPO", "PNG", "BMP", "GIF"}


def test_mpo_jpeg_is_accepted_by_validate_and_curation_alike(tmp_path):
    mpo = tmp_path / "camera.jpg"
    mpo.write_bytes(_mpo_bytes())
    with Image.open(mpo) as image:
        assert image.format == "MPO"  # the case the two checkers used to disagree on
    assert check_image(mpo) is None
    record = inspect_image(str(mpo), min_side=32, max_aspect_ratio=4.0)
    assert record.reason is None, record.detail
    assert (record.width, record.height) == (48, 40)

    report = validate_catalog(load_config(_catalog(tmp_path / "catalog", {"a.jpg": _mpo_bytes()})))
    assert report.ok, report.format()
    assert report.images_checked == 1


@pytest.mark.parametrize("image_format", ["WEBP", "TIFF"])
def test_formats_training_cannot_read_are_rejected_by_both(tmp_path, image_format):
    path = tmp_path / f"photo.{image_format.lower()}"
    path.write_bytes(_encoded(image_format))
    assert "not readable by training" in check_image(path)
    assert inspect_image(str(path), min_side=32, max_aspect_ratio=4.0).reason == (
        "unsupported_format"
    )


def test_training_decodes_an_mpo_jpeg():
    tf = pytest.importorskip("tensorflow")
    from kattr.images import decode_image

    image = decode_image(tf.constant(_mpo_bytes()))
    assert tuple(image.shape) == (40, 48, 3)


def test_available_cores_uses_the_affinity_when_the_os_has_one(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert available_cores() == 3


@pytest.mark.parametrize("cpu_count, expected", [(6, 6), (None, 1)])
def test_available_cores_without_sched_getaffinity(monkeypatch, cpu_count, expected):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: cpu_count)
    assert available_cores() == expected


def test_validate_and_curation_run_without_sched_getaffinity(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    files = {"a.jpg": _encoded("JPEG"), "b.png": _encoded("PNG"), "c.jpg": _mpo_bytes()}
    report = validate_catalog(load_config(_catalog(tmp_path, files)))  # workers=None
    assert report.ok, report.format()
    assert report.images_checked == 3

    paths = [str(tmp_path / "images" / name) for name in files]
    # workers=None: the pool is sized by available_cores(), here os.cpu_count()
    records = inspect_images(paths, min_side=32, max_aspect_ratio=4.0, progress=False)
    assert [record.reason for record in records] == [None, None, None]
