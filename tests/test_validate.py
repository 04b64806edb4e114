"""Catalog validation: every problem kind is found on the right row, and nothing is written."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from kattr.cli.data import main
from kattr.config import load_config
from kattr.validate import check_image, validate_catalog

TAXONOMY = {
    "category_column": "category",
    "categories": ["shirt", "shoe"],
    "attributes": [
        {"name": "colour", "values": ["red", "blue"], "merge": {"navy": "blue"}},
        {"name": "pattern", "values": ["solid", "striped"], "applies_to": ["shirt"]},
    ],
}


def _image_bytes(image_format: str, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def _write_catalog(folder: Path, rows: list[dict], files: dict[str, bytes]) -> Path:
    """Writes images, labels.csv and config.yaml into `folder`; returns the config path."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / "images" / name).write_bytes(data)
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    config = {"data": {"manifest": "labels.csv", "image_size": 32}, "taxonomy": TAXONOMY}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _row(image: str, category: str = "shirt", colour: str = "red", pattern: str = "") -> dict:
    return {"image": image, "category": category, "colour": colour, "pattern": pattern}


GOOD_FILES = {
    "a.png": _image_bytes("PNG", 0),
    "b.jpg": _image_bytes("JPEG", 1),
    "c.bmp": _image_bytes("BMP", 2),
    "d.gif": _image_bytes("GIF", 3),
}
GOOD_ROWS = [
    _row("images/a.png", pattern="striped"),
    _row("images/b.jpg", colour="Navy"),
    _row("images/c.bmp", category="shoe", colour="blue"),
    _row("images/d.gif", colour="", pattern="solid"),
]


def _rows_of(report, kind: str) -> list[int | None]:
    return [problem.row for problem in report.problems.get(kind, [])]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_clean_catalog_passes(tmp_path):
    config = load_config(_write_catalog(tmp_path, GOOD_ROWS, GOOD_FILES))
    report = validate_catalog(config)
    assert report.ok
    assert report.counts == {}
    assert report.rows == 4
    assert report.images_checked == 4
    assert report.blank_cells == {"category": 0, "colour": 1, "pattern": 2}
    text = report.format()
    assert "OK: 0 error(s), 0 warning(s), 0 note(s)" in text
    assert "blank cells per label column: category 0, colour 1, pattern 2" in text


def test_taxonomy_entries_no_row_uses_are_notes(tmp_path):
    rows = [_row("images/a.png"), _row("images/b.jpg", colour="navy")]
    report = validate_catalog(load_config(_write_catalog(tmp_path, rows, GOOD_FILES)))
    assert report.ok
    assert [(p.column, p.detail) for p in report.problems["unused_value"]] == [
        ("pattern", "pattern value 'solid' is unused"),
        ("pattern", "pattern value 'striped' is unused"),
        ("category", "category 'shoe' is unused"),
    ]
    assert "[note] unused_value: 3" in report.format()


def test_finds_each_problem_on_its_row(tmp_path):
    jpeg = _image_bytes("JPEG", 5)
    files = {
        **GOOD_FILES,
        "noise.jpg": np.random.default_rng(0).bytes(2000),
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "empty.png": b"",
        "picture.webp": _image_bytes("WEBP", 6),
    }
    rows = [
        *GOOD_ROWS,                                     # rows 1-4 are fine
        _row("images/absent.jpg"),                      # 5: missing file
        _row("images/noise.jpg"),                       # 6: random bytes
        _row("images/truncated.jpg"),                   # 7: truncated JPEG
        _row("images/empty.png"),                       # 8: empty file
        _row("images/picture.webp"),                    # 9: format training cannot decode
        _row("images/a.png", colour="green"),           # 10: unknown value, duplicate image
        _row("images/b.jpg", category="hat"),           # 11: unknown category, duplicate image
        _row(str(tmp_path / "images/a.png"), category=""),  # 12: blank category, same file
        _row("images/c.bmp", category="shoe", pattern="solid"),  # 13: pattern on a shoe
        _row(""),                                       # 14: blank image path
    ]
    config = load_config(_write_catalog(tmp_path, rows, files))
    report = validate_catalog(config, workers=2)

    assert _rows_of(report, "missing_file") == [5, 14]
    assert _rows_of(report, "unreadable_image") == [6, 7, 8, 9]
    assert _rows_of(report, "unknown_value") == [10, 11]
    assert [p.column for p in report.problems["unknown_value"]] == ["colour", "category"]
    assert "'green'" in report.problems["unknown_value"][0].detail
    assert _rows_of(report, "duplicate_image") == [10, 11, 12, 13]
    assert _rows_of(report, "blank_category") == [12]
    assert _rows_of(report, "not_applicable_value") == [13]
    assert "webp" in report.problems["unreadable_image"][3].detail.lower()
    assert not report.ok
    assert report.count("error") == 2 + 4 + 2
    assert report.count("warning") == 4 + 1 + 1
    assert report.images_checked == 4 + 4  # distinct existing files, the broken ones included


def test_several_values_in_an_exclusive_cell_are_reported_with_rows_and_count(tmp_path):
    rows = [
        *GOOD_ROWS,
        _row("images/a.png", colour="red|blue"),            # 5: contradictory exclusive colour
        _row("images/b.jpg", colour="navy|Blue"),           # 6: one value after the merge: fine
        _row("images/c.bmp", colour="red", pattern="solid|striped"),  # 7
    ]
    report = validate_catalog(load_config(_write_catalog(tmp_path, rows, GOOD_FILES)))
    found = report.problems["conflicting_values"]
    assert [(p.row, p.column) for p in found] == [(5, "colour"), (7, "pattern")]
    assert "'red|blue'" in found[0].detail and "missing" in found[0].detail
    assert report.ok  # a warning: training treats the cell as missing
    text = report.format()
    assert "[warning] conflicting_values: 2" in text
    assert "row 5, column 'colour': 'red|blue'" in text


def test_missing_columns_are_errors_and_other_columns_are_still_checked(tmp_path):
    rows = [{k: v for k, v in row.items() if k != "pattern"} for row in GOOD_ROWS]
    rows[0]["colour"] = "purple"
    config = load_config(_write_catalog(tmp_path, rows, GOOD_FILES))
    config.data.image_column = "photo"
    report = validate_catalog(config)
    assert sorted(p.column for p in report.problems["missing_column"]) == ["pattern", "photo"]
    assert all(p.row is None for p in report.problems["missing_column"])
    assert _rows_of(report, "unknown_value") == [1]
    assert report.images_checked == 0
    assert not report.ok


def test_invalid_split_values(tmp_path):
    splits = ["train", "VAL", "dev", ""]
    rows = [dict(row, split=split) for row, split in zip(GOOD_ROWS, splits, strict=True)]
    report = validate_catalog(load_config(_write_catalog(tmp_path, rows, GOOD_FILES)))
    assert _rows_of(report, "invalid_split") == [3, 4]


def test_without_decoding_only_existence_is_checked(tmp_path):
    files = {**GOOD_FILES, "noise.jpg": b"not an image"}
    rows = [*GOOD_ROWS, _row("images/noise.jpg"), _row("images/absent.png")]
    report = validate_catalog(
        load_config(_write_catalog(tmp_path, rows, files)), check_images=False
    )
    assert report.counts == {"missing_file": 1}
    assert report.images_checked == 0


def test_format_shows_the_first_rows_and_a_count(tmp_path):
    rows = GOOD_ROWS + [_row(f"images/absent{i}.jpg") for i in range(15)]
    report = validate_catalog(load_config(_write_catalog(tmp_path, rows, GOOD_FILES)), max_rows=3)
    text = report.format()
    assert "FAILED: 15 error(s), 0 warning(s)" in text
    assert "[error] missing_file: 15" in text
    assert text.count("absent") == 3
    assert "row 5, column 'image'" in text
    assert "... and 12 more" in text
    assert "absent14" in report.format(max_rows=20)


def test_validation_never_modifies_the_catalog(tmp_path):
    files = {**GOOD_FILES, "empty.png": b"", "truncated.jpg": _image_bytes("JPEG")[:300]}
    rows = [*GOOD_ROWS, _row("images/empty.png"), _row("images/truncated.jpg", colour="x")]
    config_path = _write_catalog(tmp_path, rows, files)
    before = _digest(tmp_path)
    validate_catalog(load_config(config_path))
    assert main(["validate", str(config_path)]) == 1
    assert _digest(tmp_path) == before


def test_cli_exit_status(tmp_path, capsys):
    good = _write_catalog(tmp_path / "good", GOOD_ROWS, GOOD_FILES)
    assert main(["validate", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = _write_catalog(tmp_path / "bad", [*GOOD_ROWS, _row("images/absent.jpg")], GOOD_FILES)
    assert main(["validate", str(bad), "--max-rows", "1"]) == 1
    assert "missing_file: 1" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "nowhere.yaml")]) == 2


def test_check_image_messages(tmp_path):
    (tmp_path / "ok.png").write_bytes(GOOD_FILES["a.png"])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert check_image(tmp_path / "ok.png") is None
    assert "cannot decode" in check_image(tmp_path / "bad.png")
    assert check_image(tmp_path / "gone.png") == f"no file at {tmp_path / 'gone.png'}"

