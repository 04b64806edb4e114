"""Label encoding: the three states, merges, multi-valued cells and unknown values."""

import numpy as np
import pandas as pd
import pytest

from kattr.config import config_from_dict
from kattr.labels import MISSING, LabelError, decode_targets, encode_labels, read_manifest

TAXONOMY = {
    "category_column": "category",
    "categories": ["tshirt", "dress", "bag"],
    "category_merge": {"tee": "tshirt"},
    "attributes": [
        {"name": "colour", "values": ["red", "navy blue"], "merge": {"crimson": "red"}},
        {"name": "sleeve", "values": ["short", "long"], "applies_to": ["tshirt", "dress"]},
        {"name": "occasion", "values": ["casual", "party", "sport"], "exclusive": False},
    ],
}


@pytest.fixture()
def taxonomy():
    return config_from_dict({"data": {}, "taxonomy": TAXONOMY}).taxonomy


def frame(**columns):
    return pd.DataFrame(columns)


def test_three_label_states(taxonomy):
    data = frame(
        category=["tshirt", "bag", "dress"],
        colour=["red", "navy blue", None],
        sleeve=["long", None, None],
        occasion=["party", "", "  "],
    )
    encoded = encode_labels(data, taxonomy)
    sleeve = encoded.targets["sleeve"]
    np.testing.assert_array_equal(sleeve[0], [0, 1])  # labelled
    np.testing.assert_array_equal(sleeve[1], [0, 0])  # not applicable to bags: negatives
    np.testing.assert_array_equal(sleeve[2], [MISSING, MISSING])  # applies, blank: missing
    np.testing.assert_array_equal(encoded.targets["colour"][2], [MISSING, MISSING])
    np.testing.assert_array_equal(encoded.targets["occasion"][1], [MISSING] * 3)
    assert encoded.targets["colour"].dtype == np.float32


def test_canonicalisation_merges_and_multi_values(taxonomy):
    data = frame(
        category=["TEE ", "Dress"],
        colour=["  Crimson", "Navy   BLUE"],
        sleeve=["SHORT", "long"],
        occasion=["casual|Sport", "party | casual|"],
    )
    encoded = encode_labels(data, taxonomy)
    np.testing.assert_array_equal(encoded.targets["colour"], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(encoded.targets["occasion"], [[1, 0, 1], [1, 1, 0]])
    np.testing.assert_array_equal(encoded.targets["sleeve"][0], [1, 0])  # tee merged into tshirt
    assert decode_targets(encoded.targets["occasion"][1], taxonomy.attributes[2]) == [
        "casual",
        "party",
    ]


def test_unknown_values_error_names_rows_and_column(taxonomy):
    data = frame(
        category=["tshirt", "tshirt", "hat"],
        colour=["red", "mauve", "red"],
        sleeve=["short", "short", None],
        occasion=["casual", "casual", "casual"],
    )
    with pytest.raises(LabelError) as error:
        encode_labels(data, taxonomy)
    message = str(error.value)
    assert "column 'colour'" in message and "row 2: 'mauve'" in message
    assert "column 'category'" in message and "row 3: 'hat'" in message


def test_unknown_values_missing_or_drop(taxonomy):
    data = frame(
        category=["tshirt", "tshirt"],
        colour=["red", "mauve"],
        sleeve=["short", "long"],
        occasion=["casual", "casual"],
    )
    as_missing = encode_labels(data, taxonomy, on_unknown="missing")
    np.testing.assert_array_equal(as_missing.targets["colour"][1], [MISSING, MISSING])
    assert as_missing.unknown_as_missing == 1 and as_missing.unknown == [(1, "colour", "mauve")]
    dropped = encode_labels(data, taxonomy, on_unknown="drop")
    assert dropped.rows.tolist() == [0] and dropped.dropped_rows == [1]
    assert dropped.targets["sleeve"].shape == (1, 2)


def test_unknown_value_beside_known_ones_keeps_them_and_makes_no_negative(taxonomy):
    """`casual|weird` (weird unknown) keeps casual positive; the other occasion values are
    missing, not negative (weird may be one of them). An exclusive cell with an unknown value
    vouches for nothing: missing."""
    data = frame(
        category=["tshirt", "tshirt", "tshirt"],
        colour=["red", "red|mauve", "red"],
        sleeve=["short", "long", "short"],
        occasion=["casual|weird", "casual", "weird"],
    )
    encoded = encode_labels(data, taxonomy, on_unknown="missing")
    np.testing.assert_array_equal(encoded.targets["occasion"],
                                  [[1, MISSING, MISSING], [1, 0, 0], [MISSING] * 3])
    np.testing.assert_array_equal(encoded.targets["colour"][1], [MISSING, MISSING])
    assert encoded.unknown == [(0, "occasion", "weird"), (1, "colour", "mauve"),
                               (2, "occasion", "weird")]
    assert encoded.unknown_as_missing == 3


def test_missing_column_is_named(taxonomy):
    data = frame(category=["tshirt"], colour=["red"], occasion=["casual"])
    with pytest.raises(LabelError, match=r"lacks column\(s\) \['sleeve'\]"):
        encode_labels(data, taxonomy)


def test_csv_and_parquet_read_the_same(tmp_path):
    data = frame(image=["a.jpg", "b.jpg"], category=["tshirt", "bag"], colour=["red", None])
    data.to_csv(tmp_path / "m.csv", index=False)
    data.to_parquet(tmp_path / "m.parquet", index=False)
    from_csv = read_manifest(tmp_path / "m.csv")
    from_parquet = read_manifest(tmp_path / "m.parquet")
    assert from_csv["colour"].isna().tolist() == [False, True]
    assert from_parquet["colour"].isna().tolist() == [False, True]
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(LabelError, match="unsupported manifest type '.json'"):
        read_manifest(tmp_path / "m.json")
    with pytest.raises(LabelError, match="manifest not found"):
        read_manifest(tmp_path / "absent.csv")


def test_exclusive_cell_with_several_values_is_missing_and_listed(taxonomy):
    data = frame(
        category=["tshirt", "tshirt", "tshirt"],
        colour=["red|Navy Blue", "red|crimson", "red"],  # row 2: crimson merges into red
        sleeve=["short|long", "long", "short"],
        occasion=["casual|party", "party", "sport"],  # multi-label: several values are fine
    )
    encoded = encode_labels(data, taxonomy)
    np.testing.assert_array_equal(encoded.targets["colour"], [[MISSING] * 2, [1, 0], [1, 0]])
    np.testing.assert_array_equal(encoded.targets["sleeve"][0], [MISSING, MISSING])
    np.testing.assert_array_equal(encoded.targets["occasion"][0], [1, 1, 0])
    assert encoded.conflicting == [(0, "colour", "red|navy blue"), (0, "sleeve", "short|long")]


def test_product_type_is_encoded_from_the_category_cell(taxonomy):
    data = frame(
        category=["Tee", None, "dress", "hat"],
        colour=["red"] * 4, sleeve=["short"] * 4, occasion=["party"] * 4,
    )
    encoded = encode_labels(data, taxonomy, on_unknown="missing")
    np.testing.assert_array_equal(
        encoded.targets["product_type"],
        [[1, 0, 0], [MISSING] * 3, [0, 1, 0], [MISSING] * 3],  # blank and unknown: missing
    )
    assert encoded.unknown == [(3, "category", "hat")]  # reported once, for the category column
    assert encoded.unknown_as_missing == 1
    with pytest.raises(LabelError, match="column 'category': 1 unknown value"):
        encode_labels(data, taxonomy)
    assert encode_labels(data, taxonomy, on_unknown="drop").rows.tolist() == [0, 1, 2]


def test_without_category_output_there_is_no_product_type():
    taxonomy = config_from_dict(
        {"data": {}, "taxonomy": {**TAXONOMY, "category_output": None}}
    ).taxonomy
    data = frame(category=["tshirt"], colour=["red"], sleeve=["short"], occasion=["party"])
    assert sorted(encode_labels(data, taxonomy).targets) == ["colour", "occasion", "sleeve"]
