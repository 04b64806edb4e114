"""The images to predict: files, folders of images, or manifests with an image column.

Example:
    >>> collect_images(["shirt.jpg", "photos/", "catalog.csv"], image_root="/data/images")
    [PosixPath('shirt.jpg'), PosixPath('photos/a.png'), PosixPath('/data/images/b.jpg')]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from kattr.labels import is_blank, read_manifest

__all__ = ["IMAGE_SUFFIXES", "MANIFEST_SUFFIXES", "collect_images"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})
MANIFEST_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq"})


def _manifest_images(
    manifest: Path, image_root: Path | None, image_column: str
) -> list[Path]:
    frame = read_manifest(manifest)
    if image_column not in frame.columns:
        raise ValueError(
            f"{manifest}: no {image_column!r} column (set --image-column). "
            f"Received columns: {list(frame.columns)}"
        )
    root = image_root if image_root is not None else manifest.parent
    images = []
    for row, cell in enumerate(frame[image_column]):
        if is_blank(cell):
            raise ValueError(f"{manifest}: row {row + 2}, column {image_column!r} is blank")
        path = Path(str(cell).strip())
        images.append(path if path.is_absolute() else root / path)
    return images


def collect_images(
    sources: Iterable[str | os.PathLike],
    image_root: str | os.PathLike | None = None,
    image_column: str = "image",
) -> list[Path]:
    """Image paths, in order, from each source.

    Args:
        sources: image files; folders (their JPEG/PNG/BMP/GIF files, recursively, sorted); or
            CSV/Parquet manifests (by suffix) with an image column.
        image_root: folder that relative manifest paths are resolved against; defaults to the
            manifest's own folder.
        image_column: the manifest column holding image paths.

    Raises:
        ValueError: a source that does not exist, or a manifest without the image column.
    """
    root = Path(image_root) if image_root is not None else None
    images: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            images.extend(sorted(
                path for path in source.rglob("*")
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
            ))
        elif source.suffix.lower() in MANIFEST_SUFFIXES:
            images.extend(_manifest_images(source, root, image_column))
        elif source.is_file():
            images.append(source)
        else:
            raise ValueError(f"{source}: no such image, folder or manifest")
    return images
