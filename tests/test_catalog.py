"""Split assignment: a pure function of a stable key, stable under added and dropped rows."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from kattr.catalog import assign_splits, load_catalog, split_of_key
from kattr.config import config_from_dict
from kattr.labels import LabelError


def make_config(**splits):
    return config_from_dict({
        "data": {"splits": {"val_fraction": 0.15, "test_fraction": 0.15, **splits}},
        "taxonomy": {
            "category_column": "category",
            "categories": ["top"],
            "attributes": [{"name": "colour", "values": ["red", "blue"], "exclusive": True}],
        },
    })


def manifest(keys, **columns):
    return pd.DataFrame({"image": [f"images/{k}.jpg" for k in keys], **columns})


def splits_by_image(frame, config):
    return dict(zip(frame["image"], assign_splits(frame, config), strict=True))


def test_adding_and_dropping_rows_moves_no_other_row():
    config = make_config()
    frame = manifest(range(500))
    before = splits_by_image(frame, config)
    grown = pd.concat([manifest(["new-a"]), frame, manifest(["new-b", "new-c"])],
                      ignore_index=True)
    shrunk = frame.drop(index=[0, 7, 250]).reset_index(drop=True)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for changed in (grown, shrunk, shuffled):
        after = splits_by_image(changed, config)
        assert {image: after[image] for image in before if image in after} == {
            image: split for image, split in before.items() if image in after
        }


def test_split_follows_the_documented_hash_rule():
    def reference(key, seed=0, val=0.15, test=0.15):
        u = int(hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()[:16], 16) / 2**64
        return "val" if u < val else "test" if u < val + test else "train"

    frame = manifest(range(300))
    expected = [reference(key) for key in frame["image"]]
    assert assign_splits(frame, make_config()).tolist() == expected
    assert [split_of_key(k, 0.15, 0.15, 0) for k in frame["image"]] == expected


def test_fractions_are_roughly_right_on_2000_keys():
    frame = manifest(range(2000))
    splits = assign_splits(frame, make_config(val_fraction=0.1, test_fraction=0.2))
    shares = {name: np.mean(splits == name) for name in ("train", "val", "test")}
    # Binomial standard deviations are under 0.01 at n = 2000.
    assert shares["val"] == pytest.approx(0.1, abs=0.03)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    assert shares["train"] == pytest.approx(0.7, abs=0.03)


def test_another_seed_gives_another_assignment():
    frame = manifest(range(400))
    first = assign_splits(frame, make_config(seed=0))
    again = assign_splits(frame, make_config(seed=0))
    other = assign_splits(frame, make_config(seed=1))
    np.testing.assert_array_equal(first, again)
    assert np.mean(first != other) > 0.2


def test_key_column_decides_the_split_and_duplicates_share_it():
    config = make_config(key_column="id")
    # Three images per product id: a product never straddles splits.
    ids = [f"product-{i // 3}" for i in range(300)]
    frame = manifest(range(300), id=ids)
    splits = assign_splits(frame, config)
    assert splits.tolist() == [split_of_key(key, 0.15, 0.15, 0) for key in ids]
    per_product = pd.Series(splits).groupby(ids).nunique()
    assert (per_product == 1).all()
    assert set(splits) == {"train", "val", "test"}
    # Renaming the images changes nothing when the key is the id.
    renamed = frame.assign(image=[f"other/{i}.png" for i in range(300)])
    np.testing.assert_array_equal(assign_splits(renamed, config), splits)


def test_duplicate_image_paths_share_a_split():
    frame = manifest([1, 2, 3, 1, 2, 3] * 50)
    splits = assign_splits(frame, make_config())
    assert (pd.Series(splits).groupby(frame["image"]).nunique() == 1).all()


def test_missing_key_column_is_a_clear_error():
    with pytest.raises(LabelError, match=r"data.splits.key_column.*'id'.*columns: \['image'\]"):
        assign_splits(manifest(range(5)), make_config(key_column="id"))
    config = make_config()
    with pytest.raises(LabelError, match=r"data.image_column.*'image'"):
        assign_splits(pd.DataFrame({"path": ["a.jpg"]}), config)


def test_blank_keys_are_an_error_naming_rows_and_column():
    frame = manifest(range(4), id=["a", None, "  ", "d"])
    with pytest.raises(LabelError, match=r"column 'id': blank split key in 2 row\(s\): 2, 3"):
        assign_splits(frame, make_config(key_column="id"))


def test_explicit_split_column_still_wins():
    frame = manifest(range(6), split=["train", "val", "test", "TEST", " val", "train"])
    splits = assign_splits(frame, make_config(key_column="missing-but-unused"))
    assert splits.tolist() == ["train", "val", "test", "test", "val", "train"]


def test_load_catalog_assigns_stable_splits(synthetic_catalog, tmp_path):
    from kattr.config import load_config
    from kattr.labels import read_manifest, write_manifest

    config = load_config(synthetic_catalog.config_path)
    frame = read_manifest(config.manifest_path).drop(columns=[config.data.splits.column])
    full, partial = tmp_path / "full.csv", tmp_path / "partial.csv"
    write_manifest(frame, full)
    write_manifest(frame.iloc[5:], partial)
    whole = load_catalog(config, str(full))
    part = load_catalog(config, str(partial))
    by_path = dict(zip(whole.paths, whole.splits, strict=True))
    assert all(by_path[p] == s for p, s in zip(part.paths, part.splits, strict=True))
    assert set(whole.splits) == {"train", "val", "test"}
