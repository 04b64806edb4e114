"""Atomic writes: the target is the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from kattr._atomic import atomic_path, write_bytes_atomic, write_text_atomic


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def test_target_appears_only_when_complete(tmp_path):
    target = tmp_path / "report.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.exists()  # same folder, so the rename is atomic
        tmp.write_text('{"half": ')
        assert not target.exists()  # a reader sees nothing yet, not the half-written file
        with tmp.open("a") as handle:
            handle.write("1}")
        assert not target.exists()
    assert target.read_text() == '{"half": 1}'
    assert _leftovers(tmp_path, "report.json") == []


def test_replacing_an_existing_file(tmp_path):
    target = tmp_path / "thresholds.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert _leftovers(tmp_path, "thresholds.json") == []


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_exception_mid_write_keeps_the_old_file_and_no_temp_file(tmp_path, error):
    target = tmp_path / "manifest.csv"
    target.write_text("image,colour\na.jpg,red\n")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_text("image,colour\nb.jp")
        raise error
    assert target.read_text() == "image,colour\na.jpg,red\n"
    assert _leftovers(tmp_path, "manifest.csv") == []


def test_a_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError), atomic_path(tmp_path / "new.md"):
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_unique_hidden_and_keep_the_suffix(tmp_path):
    target = tmp_path / "chart.png"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second  # two writers of one target never share a temporary file
        for tmp in (first, second):
            assert tmp.name.startswith(".chart.png.")
            assert tmp.name.endswith(".tmp.png")  # format-by-suffix writers still see .png
        first.write_bytes(b"first")
        second.write_bytes(b"second")
    assert target.read_bytes() == b"first"  # the last to finish wins, each one complete
    assert _leftovers(tmp_path, "chart.png") == []


def test_suffix_driven_writers_work(tmp_path):
    frame = pd.DataFrame({"image": ["a.jpg"], "colour": ["red"]})
    target = tmp_path / "manifest.parquet"
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)


def test_fsync_is_called_on_the_file(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "config.yaml"
    write_text_atomic(target, "a: 1\n")
    # os.replace keeps the inode: the file fsynced is the file now at the target
    assert target.stat().st_ino in synced
    assert synced.index(target.stat().st_ino) == 0  # the file before its folder


def test_write_helpers(tmp_path):
    write_bytes_atomic(tmp_path / "set.protoset", b"\x00\x01")
    write_text_atomic(tmp_path / "page.html", "caf\u00e9\n")
    assert (tmp_path / "set.protoset").read_bytes() == b"\x00\x01"
    assert (tmp_path / "page.html").read_bytes() == "caf\u00e9\n".encode()
    write_text_atomic(tmp_path / "latin.txt", "caf\u00e9", encoding="latin-1")
    assert (tmp_path / "latin.txt").read_bytes() == b"caf\xe9"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_follow_the_umask_like_a_plain_write(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "atomic.txt", "x")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644
