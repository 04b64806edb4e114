"""Finding an exported version directory and the value names in its `assets.extra/kattr.json`.

`kattr.json` is written by the exporter: ``{"taxonomy": {"attributes": [{"name": ..., "values":
[...]}, ...]}, "thresholds": ..., "image_size": [height, width]}`` (older exports hold one int,
a square; `image_shape_from_metadata` reads both). The score outputs `<attr>_scores` are
ordered as the attribute's `values`, which is how clients name the scores.

Example:
    >>> resolve_version_dir("exports/shirts")  # the highest integer version
    PosixPath('exports/shirts/3')
    >>> read_value_names("exports/shirts")["colour"][:2]
    ['black', 'blue']
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kattr._image_shape import as_image_shape
from kattr.serving_contract import METADATA_PATH

__all__ = [
    "METADATA_PATH",
    "image_shape_from_metadata",
    "metadata_file",
    "read_metadata",
    "read_value_names",
    "resolve_version_dir",
    "value_names_from_metadata",
]


def resolve_version_dir(path: str | os.PathLike) -> Path:
    """A SavedModel directory: `path` itself, or its highest integer-named version."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    versions = []
    if path.is_dir():
        versions = [child for child in path.iterdir() if child.name.isdigit() and child.is_dir()]
    if not versions:
        raise FileNotFoundError(
            f"{path}: neither a SavedModel directory (no saved_model.pb) nor a base path with "
            "integer version directories"
        )
    return max(versions, key=lambda child: int(child.name))


def value_names_from_metadata(
    metadata: dict, source: str = METADATA_PATH.name
) -> dict[str, list[str]]:
    """Attribute name -> value names, from the content of a `kattr.json`."""
    try:
        attributes = metadata["taxonomy"]["attributes"]
        return {str(item["name"]): [str(value) for value in item["values"]] for item in attributes}
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{source}: expected taxonomy.attributes as a list of {{name, values}}. "
            f"Missing or malformed: {error}"
        ) from None


def image_shape_from_metadata(
    metadata: dict, source: str = METADATA_PATH.name
) -> tuple[int, int] | None:
    """The model's input `(height, width)` from a `kattr.json`; None when it records none.

    Args:
        metadata: the content of a `kattr.json`.
        source: the file, named in errors.

    Example:
        >>> image_shape_from_metadata({"image_size": [128, 100]}), image_shape_from_metadata(
        ...     {"image_size": 64})
        ((128, 100), (64, 64))
    """
    if metadata.get("image_size") is None:
        return None
    return as_image_shape(metadata["image_size"], f"{source}: image_size")


def metadata_file(path: str | os.PathLike) -> Path:
    """The `kattr.json` of a `kattr.json` file, a SavedModel directory or a base path."""
    path = Path(path)
    found = path if path.is_file() else resolve_version_dir(path) / METADATA_PATH
    if not found.exists():
        raise FileNotFoundError(f"{found}: no kattr.json (written by kattr-export)")
    return found


def read_metadata(path: str | os.PathLike) -> dict:
    """The content of an export's `kattr.json`: the one reader every client and app uses.

    Args:
        path: the `kattr.json` file, a SavedModel version directory or a base path (its
            highest version); a remote path (``gs://...``) must be a version directory.

    Raises:
        FileNotFoundError: no export or no `kattr.json` there.
        ValueError: a file that is not a JSON object (the message names it).

    Example:
        >>> read_metadata("exports/shirts")["taxonomy"]["attributes"][0]["name"]
        'colour'
    """
    if "://" in str(path):  # a remote version directory (gs://...): TensorFlow's filesystems
        import tensorflow as tf

        found = f"{str(path).rstrip('/')}/{METADATA_PATH.as_posix()}"
        if not tf.io.gfile.exists(found):
            raise FileNotFoundError(
                f"{found}: no kattr.json; a remote path must be the version directory of a "
                "kattr export (BASE/NAME/VERSION)"
            )
        text = tf.io.gfile.GFile(found, "rb").read().decode("utf-8", errors="replace")
    else:
        found = metadata_file(path)
        text = found.read_text(encoding="utf-8", errors="replace")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{found}: not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{found}: expected a JSON object. Received: {type(metadata).__name__}")
    return metadata


def read_value_names(path: str | os.PathLike) -> dict[str, list[str]]:
    """Value names from a `kattr.json` file, a SavedModel directory or a base path."""
    return value_names_from_metadata(read_metadata(path), str(metadata_file(path)))
