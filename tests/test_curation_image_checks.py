"""Tests of image validation, hashing in parallel and the progress bar."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kattr.curation import CurationError
from kattr.curation.hashing import inspect_images
from kattr.curation.image_checks import THUMBNAIL_SIDE, inspect_image
from kattr.curation.progress import ProgressBar


def _picture(size: tuple[int, int] = (48, 40), seed: int = 0) -> Image.Image:
    cells = np.random.default_rng(seed).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC)


def _encoded(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    jpeg = _encoded(_picture(), "JPEG")
    png = _encoded(_picture(seed=1), "PNG")
    contents = {
        "valid.jpg": jpeg,
        "valid.png": png,
        "empty.jpg": b"",
        "text.jpg": b"this is not an image",
        "cut.jpg": jpeg[: len(jpeg) - 40],
        "cut.png": png[: len(png) - 20],
        "tiny.png": _encoded(_picture((20, 40)), "PNG"),
        "banner.png": _encoded(_picture((200, 40)), "PNG"),
        "photo.tiff": _encoded(_picture(), "TIFF"),
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    paths["absent.jpg"] = tmp_path / "absent.jpg"
    return paths


EXPECTED = {
    "valid.jpg": None,
    "valid.png": None,
    "empty.jpg": "empty_file",
    "text.jpg": "unreadable",
    "cut.jpg": "truncated",
    "cut.png": "truncated",
    "tiny.png": "too_small",
    "banner.png": "extreme_aspect_ratio",
    "photo.tiff": "unsupported_format",
    "absent.jpg": "missing_file",
}


def test_each_defect_gets_its_reason(files):
    reasons = {name: inspect_image(str(path), 32, 4.0).reason for name, path in files.items()}
    assert reasons == EXPECTED


def test_valid_image_is_measured_and_hashed(files):
    record = inspect_image(str(files["valid.jpg"]), 32, 4.0)
    assert (record.width, record.height) == (48, 40)
    assert len(record.content_hash) == 32 and 0 <= record.perceptual_hash < 2**64
    assert len(record.thumbnail) == THUMBNAIL_SIDE * THUMBNAIL_SIDE * 3
    other = inspect_image(str(files["valid.png"]), 32, 4.0)
    assert other.content_hash != record.content_hash


def test_content_hash_ignores_the_container(tmp_path):
    image = _picture()
    image.save(tmp_path / "a.png")
    image.save(tmp_path / "b.bmp")
    first, second = (inspect_image(str(tmp_path / n), 32, 4.0) for n in ("a.png", "b.bmp"))
    assert first.content_hash == second.content_hash
    assert first.perceptual_hash == second.perceptual_hash


def test_limits_are_configurable(files):
    assert inspect_image(str(files["tiny.png"]), 20, 4.0).reason is None
    assert inspect_image(str(files["banner.png"]), 32, 5.0).reason is None


def test_parallel_run_keeps_order_and_matches_serial(files, capsys):
    paths = [str(path) for path in files.values()] * 3
    serial = inspect_images(paths, 32, 4.0, workers=1, progress=False)
    parallel = inspect_images(paths, 32, 4.0, workers=2, progress=True)
    assert parallel == serial
    assert [r.reason for r in parallel] == list(EXPECTED.values()) * 3
    assert f"{len(paths)}/{len(paths)}" in capsys.readouterr().err


def test_workers_must_be_positive(files):
    with pytest.raises(CurationError, match="curation.workers"):
        inspect_images([str(files["valid.jpg"])], 32, 4.0, workers=0)


def test_progress_bar_draws_counts_and_can_be_silenced():
    stream = io.StringIO()
    bar = ProgressBar(total=4, description="hashing", stream=stream)
    bar.update(1)
    bar.update(3)
    bar.close()
    text = stream.getvalue()
    assert "hashing" in text and "4/4" in text and "100%" in text and text.endswith("\n")
    quiet = io.StringIO()
    silent = ProgressBar(total=4, description="hashing", enabled=False, stream=quiet)
    silent.update(4)
    silent.close()
    assert quiet.getvalue() == "" and silent.count == 4
