"""Atomic file writes: readers see the old file or the complete new one, never a partial one.

Every writer of a single output file (JSON, YAML, Markdown, CSV/Parquet manifests, PNG charts,
`.keras` models, TFRecords) goes through `atomic_path`: the content is written to a unique
temporary file in the target's folder, flushed to disk with `os.fsync`, then renamed over the
target with `os.replace` (atomic on POSIX and Windows within one file system, hence the same
folder). The folder is then fsynced too, best effort, so the rename survives a power cut. When
the write fails the temporary file is removed and the old target, if any, is left untouched.

The temporary name is ``.<name>.<random>.tmp<suffix>``, e.g. ``.report.md.k3j9x2aq.tmp.md``:
hidden (leading dot), unique (concurrent writers never share one), recognisably temporary, and
ending with the target's own suffix, so writers that pick a format or a compression from the
file name (matplotlib `savefig`, pandas `to_csv("x.csv.gz")`, Keras `save` which requires
``.keras``) behave exactly as if they wrote the target itself. The file is created with
``O_CREAT | O_EXCL`` and mode 0o666 filtered by the umask, like a plain `open(path, "w")`, so
the target gets the usual permissions (`tempfile.mkstemp` would make it 0o600).

Folder swaps (a staging folder renamed over an output folder) are not covered: they replace a
directory, which `os.replace` cannot do atomically over a non-empty one.

Example:
    >>> write_text_atomic("out/report.md", "# Report\\n")
    >>> with atomic_path("out/chart.png") as tmp:
    ...     figure.savefig(tmp)  # the format comes from tmp's suffix, .png
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic"]

_ATTEMPTS = 100


def _create_unique(path: Path) -> Path:
    """Creates an empty, new temporary file next to `path` and returns its path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_ATTEMPTS):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(candidate, flags, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no unused temporary name next to {path} after {_ATTEMPTS} tries")


def _fsync_file(path: Path) -> None:
    # Windows' fsync (_commit) needs a handle open for writing; POSIX accepts a read-only one.
    fd = os.open(path, (os.O_RDWR if os.name == "nt" else os.O_RDONLY) | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in `folder` durable; best effort (Windows cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path to write; on success it atomically becomes `path`.

    The temporary file already exists (empty) in `path`'s folder when the block starts; write
    it by name with any writer, which may close it. When the block ends without an exception
    the file is fsynced and renamed over `path` with `os.replace`; when it raises (a
    `KeyboardInterrupt` included) the temporary file is removed, `path` is left as it was and
    the exception propagates. The folder must exist.

    Args:
        path: the target file.

    Yields:
        The temporary file: ``.<name>.<random>.tmp<suffix>`` next to `path` (the same suffix,
        so format-by-suffix writers work).

    Example:
        >>> with atomic_path("manifest.parquet") as tmp:
        ...     frame.to_parquet(tmp, index=False)
    """
    path = Path(path)
    temporary = _create_unique(path)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Writes `text` to `path` atomically (see `atomic_path`), UTF-8 unless told otherwise."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding=encoding)
