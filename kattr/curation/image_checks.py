"""Checks one image file and computes its content and perceptual hashes.

An image is invalid when its file is missing or empty, cannot be decoded completely
(unreadable; or truncated: the decoder ran out of data or a JPEG/PNG lacks its end marker),
is in a format the training decoder does not read, has a shorter side below `min_side`, or
has a long/short side ratio above `max_aspect_ratio`.

Example:
    >>> record = inspect_image("images/1163.jpg", min_side=32, max_aspect_ratio=4.0)
    >>> record.reason is None, record.width, record.height
    (True, 60, 80)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

from kattr._image_formats import TRAINING_FORMATS, is_training_format

__all__ = [
    "INVALID_REASONS",
    "THUMBNAIL_SIDE",
    "TRAINING_FORMATS",
    "ImageRecord",
    "inspect_image",
]

INVALID_REASONS = (
    "missing_file",
    "empty_file",
    "unreadable",
    "truncated",
    "unsupported_format",
    "too_small",
    "extreme_aspect_ratio",
)

# Last bytes of complete files (JPEG end-of-image; PNG IEND chunk with its CRC); trailing
# padding after them is tolerated.
_END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
_TAIL_BYTES = 64

# Side of the RGB thumbnail kept to verify near duplicates (768 bytes per image).
THUMBNAIL_SIDE = 16


@dataclass(slots=True)
class ImageRecord:
    """What curation needs to know about one image file.

    Attributes:
        reason: None for a valid image, else one of `INVALID_REASONS`.
        detail: a human-readable explanation of `reason`.
        width: width in pixels (0 when not decodable).
        height: height in pixels (0 when not decodable).
        content_hash: BLAKE2b hex digest of the decoded RGB pixels and the size, so the same
            picture saved twice is an exact duplicate even when file metadata differs.
        perceptual_hash: 64-bit DCT perceptual hash (`imagehash.phash`) as an unsigned integer.
        thumbnail: RGB bytes of the image squeezed to `THUMBNAIL_SIDE` pixels a side.
    """

    reason: str | None = None
    detail: str = ""
    width: int = 0
    height: int = 0
    content_hash: str = ""
    perceptual_hash: int = 0
    thumbnail: bytes = b""


def _perceptual_hash(image: Image.Image) -> int:
    bits = imagehash.phash(image).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _missing_end_marker(path: str, image_format: str | None) -> bool:
    """True when a JPEG or PNG file lacks its end marker: the file was cut short."""
    marker = _END_MARKERS.get(image_format)
    if marker is None:
        return False
    with open(path, "rb") as file:
        file.seek(max(os.path.getsize(path) - _TAIL_BYTES, 0))
        tail = file.read()
    return not tail.rstrip(b"\0\r\n ").endswith(marker)


def _decode(path: str) -> tuple[Image.Image | None, ImageRecord | None]:
    """Opens and fully decodes an image; returns the image or the invalid record."""
    try:
        image = Image.open(path)
    except Exception as error:  # any failure to identify the file means unreadable
        reason = "truncated" if "truncated" in str(error).lower() else "unreadable"
        return None, ImageRecord(reason, f"cannot identify image: {error}")
    try:
        image.load()
    except OSError as error:
        reason = "truncated" if "truncated" in str(error).lower() else "unreadable"
        return None, ImageRecord(reason, f"{image.format} decode failed: {error}")
    except Exception as error:  # corrupt data raises assorted decoder errors
        return None, ImageRecord("unreadable", f"{image.format} decode failed: {error}")
    if _missing_end_marker(path, image.format):
        image.close()
        return None, ImageRecord("truncated", f"{image.format} file has no end-of-image marker")
    return image, None


def inspect_image(path: str, min_side: int, max_aspect_ratio: float) -> ImageRecord:
    """Validates one image and hashes it; never raises for a bad file.

    Args:
        path: the image file.
        min_side: smallest allowed shorter side in pixels.
        max_aspect_ratio: largest allowed long/short side ratio.

    Returns:
        An `ImageRecord`; its `reason` is None when the image is valid.

    Example:
        >>> inspect_image("missing.jpg", 32, 4.0).reason
        'missing_file'
    """
    try:
        size = os.path.getsize(path)
    except OSError as error:
        return ImageRecord("missing_file", f"cannot read file: {error.strerror}")
    if size == 0:
        return ImageRecord("empty_file", "file has 0 bytes")
    image, invalid = _decode(path)
    if invalid is not None:
        return invalid
    with image:
        width, height = image.size
        record = ImageRecord(width=width, height=height)
        if not is_training_format(image.format):
            record.reason = "unsupported_format"
            record.detail = f"{image.format} is not one of {list(TRAINING_FORMATS)}"
            return record
        if min(width, height) < min_side:
            record.reason = "too_small"
            record.detail = f"{width}x{height} has a side below min_side={min_side}"
            return record
        ratio = max(width, height) / max(min(width, height), 1)
        if ratio > max_aspect_ratio:
            record.reason = "extreme_aspect_ratio"
            record.detail = f"{width}x{height} has aspect ratio {ratio:.2f} > {max_aspect_ratio}"
            return record
        rgb = image.convert("RGB")
        digest = hashlib.blake2b(f"{width}x{height}:".encode(), digest_size=16)
        digest.update(rgb.tobytes())
        record.content_hash = digest.hexdigest()
        record.perceptual_hash = _perceptual_hash(rgb)
        size = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
        record.thumbnail = rgb.resize(size, Image.Resampling.BOX).tobytes()
    return record
