"""Atomic output folders: everything is written to a temporary sibling, then renamed.

Example:
    >>> staging = start_output("out/curated", overwrite=False, inputs=[manifest, image_root])
    >>> (staging / "labels.csv").write_text("...")
    >>> finish_output(staging, "out/curated")
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from kattr.curation.errors import CurationError

__all__ = ["discard_output", "finish_output", "start_output"]


def start_output(
    output_dir: str | os.PathLike, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Checks that `output_dir` may be written and creates its temporary sibling.

    Args:
        output_dir: the final folder.
        overwrite: allow replacing an existing non-empty folder.
        inputs: files and folders that must not lie inside `output_dir` (they would be
            replaced).

    Raises:
        CurationError: the folder is non-empty without `overwrite`, is a file, or holds an input.
    """
    output_dir = Path(output_dir).resolve()
    for path in inputs:
        if Path(path).resolve().is_relative_to(output_dir):
            raise CurationError(
                f"{output_dir}: the output folder holds the input {path}; choose another folder. "
                "Inputs are never overwritten."
            )
    if output_dir.exists() and not output_dir.is_dir():
        raise CurationError(f"{output_dir}: expected a folder for the output. Received: a file")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise CurationError(
            f"{output_dir}: the output folder exists and is not empty; pass --overwrite "
            "(overwrite=True) to replace it"
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))


def finish_output(staging: Path, output_dir: str | os.PathLike) -> None:
    """Moves the finished `staging` folder to `output_dir`, replacing what was there."""
    output_dir = Path(output_dir).resolve()
    staging.chmod(0o755)  # mkdtemp creates 0700 folders
    if output_dir.is_dir() and any(output_dir.iterdir()):
        retired = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
        os.replace(output_dir, retired / output_dir.name)
        os.replace(staging, output_dir)
        shutil.rmtree(retired)
    else:
        os.replace(staging, output_dir)  # renaming onto an empty folder replaces it


def discard_output(staging: Path) -> None:
    """Removes an unfinished staging folder."""
    shutil.rmtree(staging, ignore_errors=True)
