"""Tests of duplicate grouping: candidate search, pixel verification, leaders."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from kattr.curation import CurationError
from kattr.curation.duplicates import (
    MAX_PIXEL_DIFFERENCE,
    duplicate_groups,
    near_duplicate_pairs,
    pixel_differences,
)
from kattr.curation.image_checks import THUMBNAIL_SIDE


def _brute_force_pairs(hashes: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    return {
        (i, j) for i, j in itertools.combinations(range(len(hashes)), 2)
        if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= max_distance
    }


@pytest.mark.parametrize("max_distance", [0, 3, 8])
def test_candidate_search_matches_brute_force(max_distance):
    rng = np.random.default_rng(max_distance)
    base = rng.integers(0, 2**63, 40, dtype=np.uint64)
    # Copies of the first hashes with a few bits flipped, so close pairs exist.
    flips = [np.uint64(sum(1 << int(b) for b in rng.choice(64, k, replace=False)))
             for k in rng.integers(0, 10, 40)]
    hashes = np.concatenate([base, base ^ np.array(flips, dtype=np.uint64)])
    found = {tuple(pair) for pair in near_duplicate_pairs(hashes, max_distance).tolist()}
    assert found == _brute_force_pairs(hashes, max_distance)
    assert found  # the copies with few flipped bits are found


def test_negative_distance_is_rejected():
    with pytest.raises(CurationError, match="near_duplicate_distance"):
        near_duplicate_pairs(np.zeros(2, dtype=np.uint64), -1)


def _product(colour: tuple[int, int, int], size: int = 64) -> Image.Image:
    """A catalog-style photo: one shape on a white background."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).ellipse([12, 8, 52, 56], fill=colour)
    ImageDraw.Draw(image).rectangle([26, 20, 38, 44], fill=(240, 240, 240))
    return image


def _thumbnail(image: Image.Image) -> np.ndarray:
    side = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    return np.asarray(image.convert("RGB").resize(side, Image.Resampling.BOX))


def _reencoded(image: Image.Image, brightness: float, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    ImageEnhance.Brightness(image).enhance(brightness).save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_pixel_difference_accepts_edits_and_rejects_a_colour_change():
    red = _product((200, 30, 30))
    thumbnails = np.stack([
        _thumbnail(red),
        _thumbnail(_reencoded(red, 1.0, 60)),
        _thumbnail(_reencoded(red, 1.1, 90)),
        _thumbnail(_product((30, 30, 200))),
    ])
    differences = pixel_differences(thumbnails, np.array([[0, 0], [0, 1], [0, 2], [0, 3]]))
    assert differences[0] == 0.0
    assert differences[1] <= MAX_PIXEL_DIFFERENCE and differences[2] <= MAX_PIXEL_DIFFERENCE
    assert differences[3] > 4 * MAX_PIXEL_DIFFERENCE
    reversed_pairs = pixel_differences(thumbnails, np.array([[1, 0], [3, 0]]))
    np.testing.assert_allclose(reversed_pairs, differences[[1, 3]])  # symmetric


def test_groups_exact_and_near_duplicates_but_not_a_colour_variant():
    red = _product((200, 30, 30))
    images = [red, red, _reencoded(red, 1.05, 80), _product((30, 30, 200)), _product((30, 160, 60))]
    content = ["a", "a", "b", "c", "d"]
    found = duplicate_groups(
        content, [0, 0, 0b11, 0, 0], np.stack([_thumbnail(i) for i in images]),
        np.array([64 * 64] * 5), max_distance=4,
    )
    assert found.groups.tolist() == [0, 0, 0, -1, -1]
    assert found.kept.tolist() == [0]  # equal sizes: the earliest image leads


def test_exact_only_when_distance_is_zero():
    image = _thumbnail(_product((200, 30, 30)))
    found = duplicate_groups(["a", "b", "a"], [0, 0, 0], np.stack([image] * 3), np.ones(3), 0)
    assert found.groups.tolist() == [0, -1, 0]


def test_largest_image_leads_and_groups_do_not_chain():
    # Hashes 0 -- 0b1111 -- 0b11111111: the middle one is near both ends, the ends are not
    # near each other. Identical thumbnails, so only the hashes decide.
    hashes = [0, 0b1111, 0b11111111]
    thumbnails = np.stack([_thumbnail(_product((200, 30, 30)))] * 3)
    first_largest = duplicate_groups(["a", "b", "c"], hashes, thumbnails, np.array([9, 4, 4]), 4)
    assert first_largest.groups.tolist() == [0, 0, -1]
    assert first_largest.kept.tolist() == [0]
    middle_largest = duplicate_groups(["a", "b", "c"], hashes, thumbnails, np.array([4, 9, 4]), 4)
    assert middle_largest.groups.tolist() == [0, 0, 0]
    assert middle_largest.kept.tolist() == [1]


def test_no_images():
    found = duplicate_groups([], [], np.zeros((0, 16, 16, 3), np.uint8), np.zeros(0), 4)
    assert found.groups.tolist() == [] and found.kept.tolist() == []
