"""tf.data pipeline: decoding of every format, shapes, ranges, augmentation and skipped files."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kattr.config import AugmentationConfig
from kattr.images import decode_and_resize, resize_to_fit
from kattr.pipeline import SkipCounter, make_dataset

SIZE = 32


def write_images(folder):
    """One file per format/mode the pipeline must read; returns their paths."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)
    files = {
        "rgb.jpg": (Image.fromarray(rgb), "JPEG"),
        "rgba.png": (
            Image.fromarray(rng.integers(0, 256, (30, 30, 4), dtype=np.uint8), "RGBA"),
            "PNG",
        ),
        "grey.png": (Image.fromarray(rng.integers(0, 256, (20, 50), dtype=np.uint8), "L"), "PNG"),
        "rgb.bmp": (Image.fromarray(rgb), "BMP"),
        "anim.gif": (Image.fromarray(rgb).convert("P"), "GIF"),
    }
    paths = []
    for name, (image, fmt) in files.items():
        path = folder / name
        if fmt == "GIF":
            second = Image.fromarray(255 - rgb).convert("P")
            image.save(path, fmt, save_all=True, append_images=[second])
        else:
            image.save(path, fmt)
        paths.append(str(path))
    return paths


def targets_for(n):
    return {
        "colour": np.tile(np.array([[1, 0, 0]], np.float32), (n, 1)),
        "occasion": np.full((n, 2), -1, np.float32),
    }


def test_every_format_decodes_to_rgb_square(tmp_path):
    paths = write_images(tmp_path)
    dataset = make_dataset(paths, targets_for(len(paths)), SIZE, batch_size=8, training=False)
    images, targets = next(iter(dataset))
    assert images.shape == (len(paths), SIZE, SIZE, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 255.0
    assert set(targets) == {"colour", "occasion"}
    assert targets["colour"].shape == (len(paths), 3)
    np.testing.assert_array_equal(targets["occasion"].numpy() >= 0, False)  # masks derivable


def test_aspect_kept_and_padded_white(tmp_path):
    tall = np.zeros((40, 20, 3), np.uint8)  # black, twice as tall as wide
    Image.fromarray(tall).save(tmp_path / "tall.png")
    image = decode_and_resize(tf.io.read_file(str(tmp_path / "tall.png")), SIZE).numpy()
    assert image[:, SIZE // 2].max() == 0.0  # centre column: the black image
    assert image[:, :6].min() == 255.0 and image[:, -6:].min() == 255.0  # white side bands


def test_portrait_photo_fits_a_portrait_size_with_two_white_columns_each_side():
    # A 60 px wide, 80 px high catalog photo into [128, 100]: scaled by 1.6 to 96 x 128.
    rows = np.linspace(0, 200, 80, dtype=np.float32)[:, None, None]
    photo = np.broadcast_to(rows, (80, 60, 3)).astype(np.uint8)
    fitted = resize_to_fit(tf.constant(photo), 128, 100).numpy()
    assert fitted.shape == (128, 100, 3) and fitted.dtype == np.float32
    assert fitted[:, :2].min() == 255.0 and fitted[:, -2:].min() == 255.0
    inside = fitted[:, 2:-2]
    assert inside[0].max() < 10.0 and inside[-1].min() > 190.0  # the photo spans every row
    expected = tf.image.resize(photo.astype(np.float32), (128, 96), antialias=True).numpy()
    np.testing.assert_allclose(inside, expected, atol=1e-3)


def test_square_size_is_an_int_or_a_pair_and_height_width_are_not_swapped(tmp_path):
    wide = np.zeros((20, 40, 3), np.uint8)  # black, twice as wide as tall
    Image.fromarray(wide).save(tmp_path / "wide.png")
    encoded = tf.io.read_file(str(tmp_path / "wide.png"))
    np.testing.assert_array_equal(
        decode_and_resize(encoded, SIZE).numpy(), decode_and_resize(encoded, [SIZE, SIZE]).numpy()
    )
    tall_box = decode_and_resize(encoded, (64, 32)).numpy()  # height 64, width 32
    assert tall_box.shape == (64, 32, 3)
    assert tall_box[:24].min() == 255.0 and tall_box[-24:].min() == 255.0  # white above, below
    assert tall_box[24:40].max() == 0.0  # the 16 x 32 image in the middle


def test_dataset_yields_height_by_width_batches(tmp_path):
    paths = write_images(tmp_path)
    dataset = make_dataset(paths, targets_for(len(paths)), (48, 32), batch_size=8, training=False)
    images, _ = next(iter(dataset))
    assert images.shape == (len(paths), 48, 32, 3)


@pytest.mark.parametrize("size", [[0, 5], [1, 2, 3], "big", [32.0, 32]])
def test_bad_size_is_a_clear_error(size):
    with pytest.raises(ValueError, match=r"size: expected .*Received: "):
        decode_and_resize(tf.constant(b""), size)


def test_augmentation_off_in_training_is_exactly_the_plain_decode(tmp_path):
    paths = write_images(tmp_path)
    off = AugmentationConfig(enabled=False)
    # training=True is where augmentation would apply; it also shuffles, hence the sorting.
    trained_on = next(iter(make_dataset(paths, targets_for(5), SIZE, 5, training=True,
                                        augmentation=off, seed=3)))[0].numpy()
    plain = next(iter(make_dataset(paths, targets_for(5), SIZE, 5, training=False)))[0].numpy()
    np.testing.assert_array_equal(
        sorted(trained_on, key=np.ndarray.tobytes), sorted(plain, key=np.ndarray.tobytes)
    )
    expected = decode_and_resize(tf.io.read_file(paths[0]), SIZE).numpy()
    np.testing.assert_array_equal(plain[0], expected)


def test_augmentation_on_changes_images_keeps_range(tmp_path):
    paths = write_images(tmp_path)
    plain = next(iter(make_dataset(paths, targets_for(5), SIZE, 5, training=False)))[0].numpy()
    augmented = next(
        iter(
            make_dataset(
                paths,
                targets_for(5),
                SIZE,
                5,
                training=True,
                augmentation=AugmentationConfig(),
                seed=1,
            )
        )
    )[0].numpy()
    assert augmented.shape == plain.shape
    assert augmented.min() >= 0.0 and augmented.max() <= 255.0
    # Shuffled and transformed: sorted per-image means must differ from the plain ones.
    assert not np.allclose(
        np.sort(augmented.mean(axis=(1, 2, 3))), np.sort(plain.mean(axis=(1, 2, 3)))
    )


@pytest.mark.parametrize("cache", [False, True])
def test_corrupt_and_missing_files_are_skipped_and_counted(tmp_path, cache):
    paths = write_images(tmp_path)
    (tmp_path / "garbage.jpg").write_bytes(b"not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    good = Path(paths[0]).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[:20])
    bad = [str(tmp_path / n) for n in ("garbage.jpg", "empty.png", "truncated.jpg", "absent.jpg")]
    all_paths = paths + bad
    counter = SkipCounter(expected=len(all_paths))
    dataset = make_dataset(
        all_paths, targets_for(len(all_paths)), SIZE, 3, training=True, cache=cache, counter=counter
    )
    for epoch in range(2):
        counter.reset()
        seen = sum(int(images.shape[0]) for images, _ in dataset)
        assert seen == len(paths), f"epoch {epoch}"
        assert counter.skipped == len(bad)


def test_targets_rows_must_match_paths():
    with pytest.raises(ValueError, match="one row per path"):
        make_dataset(["a.jpg"], targets_for(2), SIZE, 1, training=False)
