"""Tests of label canonicalisation, duplicate conflicts and rare values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kattr.config import config_from_dict
from kattr.curation import CurationError
from kattr.curation.conflicts import resolve_duplicates
from kattr.curation.label_values import clean_labels, label_columns
from kattr.curation.rare_values import check_rare_fallback, prune_rare_values
from kattr.labels import LabelError, encode_labels


@pytest.fixture()
def taxonomy():
    return config_from_dict({
        "data": {},
        "taxonomy": {
            "category_column": "category",
            "categories": ["top", "shoe"],
            "category_merge": {"tee": "top"},
            "attributes": [
                {"name": "colour", "values": ["red", "blue", "green", "other"],
                 "merge": {"navy": "blue"}},
                {"name": "occasion", "values": ["casual", "party", "sport"], "exclusive": False},
                {"name": "pattern", "column": "print", "values": ["solid", "striped"],
                 "applies_to": ["top"]},
            ],
        },
    }).taxonomy


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image", "category", "colour", "occasion", "print"])


# --- canonical cells, merges, unknown values


def test_cells_are_canonical_and_merges_counted(taxonomy):
    frame = _frame([
        ("a.jpg", " Tee ", "  NAVY ", "Casual | party|casual", "Solid"),
        ("b.jpg", "shoe", "navy", None, None),
        ("c.jpg", "top", "Red", " ", "striped"),
    ])
    cleaned = clean_labels(frame, taxonomy, "error")
    assert cleaned.frame["category"].tolist() == ["top", "shoe", "top"]
    assert cleaned.frame["colour"].tolist() == ["blue", "blue", "red"]
    assert cleaned.frame["occasion"].tolist() == ["casual|party", None, None]
    merges = {(m.column, m.source, m.target): m.cells for m in cleaned.merges}
    assert merges == {("colour", "navy", "blue"): 2, ("category", "tee", "top"): 1}
    assert frame.loc[0, "colour"] == "  NAVY "  # input untouched
    # The canonical manifest encodes to the same targets as the raw one.
    raw, canonical = encode_labels(frame, taxonomy), encode_labels(cleaned.frame, taxonomy)
    for name in raw.targets:
        np.testing.assert_array_equal(raw.targets[name], canonical.targets[name])


@pytest.mark.parametrize("policy", ["missing", "drop", "error"])
def test_unknown_values_follow_on_unknown(taxonomy, policy):
    frame = _frame([("a.jpg", "top", "mauve", "casual", None), ("b.jpg", "hat", "red", None, None),
                    ("c.jpg", "top", "red", None, None)])
    if policy == "error":
        with pytest.raises(LabelError, match="mauve"):
            clean_labels(frame, taxonomy, policy)
        return
    cleaned = clean_labels(frame, taxonomy, policy)
    assert [(row, column) for row, column, _ in cleaned.unknown] == [(0, "colour"), (1, "category")]
    if policy == "missing":
        assert cleaned.frame["colour"].tolist() == [None, "red", "red"]
        assert cleaned.frame["category"].tolist() == ["top", None, "top"]
        assert cleaned.dropped_rows == []
    else:
        assert cleaned.dropped_rows == [0, 1]


def test_on_unknown_missing_keeps_a_multi_label_cells_known_values(taxonomy):
    """`casual|weird`: the cell is kept so that training reads casual = 1 and the other values
    missing (see `kattr.labels`); blanking it would lose casual, dropping weird would make the
    others false negatives."""
    frame = _frame([("a.jpg", "top", "red", "Casual|weird", None),
                    ("b.jpg", "top", "red|mauve", "weird", None)])
    cleaned = clean_labels(frame, taxonomy, "missing")
    assert cleaned.frame["occasion"].tolist() == ["casual|weird", None]
    assert cleaned.frame["colour"].tolist() == ["red", None]  # exclusive: no value vouched
    occasion = encode_labels(cleaned.frame, taxonomy, on_unknown="missing").targets["occasion"]
    np.testing.assert_array_equal(occasion[0], [1, -1, -1])


def test_absent_column_is_named(taxonomy):
    with pytest.raises(LabelError, match="print"):
        clean_labels(_frame([("a.jpg", "top", "red", None, None)]).drop(columns="print"),
                     taxonomy, "error")


# --- duplicate groups with conflicting labels


def _group_frame() -> pd.DataFrame:
    return _frame([
        ("a.jpg", "top", "red", "casual", None),
        ("b.jpg", "top", "blue", "casual", "solid"),
        ("c.jpg", "top", "blue", None, None),
        ("d.jpg", "shoe", "green", "sport", None),
    ])


def _resolve(taxonomy, policy: str):
    groups = np.array([0, 0, 0, -1])
    return resolve_duplicates(_group_frame(), groups, np.array([0]), label_columns(taxonomy),
                              taxonomy.separator, policy)


def test_keep_majority_takes_the_most_common_label_and_fills_blanks(taxonomy):
    resolution = _resolve(taxonomy, "keep_majority")
    kept = resolution.frame.loc[0]
    assert (kept["colour"], kept["occasion"], kept["print"]) == ("blue", "casual", "solid")
    assert resolution.removed == {1: ("duplicate", "duplicate of row 1 (group 0)"),
                                  2: ("duplicate", "duplicate of row 1 (group 0)")}
    assert resolution.groups[0].conflicts == {"colour": ["red", "blue"]}
    assert resolution.filled_cells == 1  # print: only b.jpg has it
    assert resolution.frame.loc[3].tolist() == _group_frame().loc[3].tolist()


def test_mark_missing_blanks_only_the_disagreeing_columns(taxonomy):
    resolution = _resolve(taxonomy, "mark_missing")
    kept = resolution.frame.loc[0]
    assert pd.isna(kept["colour"]) and kept["occasion"] == "casual"
    assert set(resolution.removed) == {1, 2}


def test_drop_removes_the_whole_conflicting_group(taxonomy):
    resolution = _resolve(taxonomy, "drop")
    assert set(resolution.removed) == {0, 1, 2}
    assert {reason for reason, _ in resolution.removed.values()} == {"conflicting_duplicates"}
    assert resolution.groups[0].kept_row is None


def test_a_tie_keeps_the_kept_images_label(taxonomy):
    frame = _group_frame().iloc[:2]
    for kept_row, colour in ((0, "red"), (1, "blue")):
        resolution = resolve_duplicates(frame, np.array([0, 0]), np.array([kept_row]),
                                        ["colour"], "|", "keep_majority")
        assert resolution.frame.loc[kept_row, "colour"] == colour


def test_unknown_conflict_policy_is_rejected(taxonomy):
    with pytest.raises(CurationError, match="conflict_policy"):
        _resolve(taxonomy, "vote")


# --- rare values


def _rare_frame() -> pd.DataFrame:
    rows = [(f"{i}.jpg", "top", "red", "casual", "solid") for i in range(5)]
    rows += [("g1.jpg", "top", "green", "casual|sport", None)]
    rows += [("g2.jpg", "top", "green", None, None)]
    rows += [("b.jpg", "shoe", "blue", "sport", "striped")]  # print not applicable to shoes
    return _frame(rows)


def test_rare_values_are_counted_and_kept(taxonomy):
    pruned = prune_rare_values(_rare_frame(), taxonomy, 3, "keep", {})
    found = {(r.attribute, r.value): (r.count, r.action, r.cells) for r in pruned.rare_values}
    assert found == {
        ("colour", "green"): (2, "kept", 0),
        ("colour", "blue"): (1, "kept", 0),
        ("occasion", "sport"): (2, "kept", 0),
    }  # the shoe's "striped" is not a labelled example: pattern does not apply to shoes
    pd.testing.assert_frame_equal(pruned.frame, _rare_frame())


def test_rare_values_become_missing(taxonomy):
    pruned = prune_rare_values(_rare_frame(), taxonomy, 3, "missing", {})
    colours = pruned.frame["colour"].fillna("(missing)").tolist()
    assert colours == ["red"] * 5 + ["(missing)"] * 3
    occasions = pruned.frame["occasion"].fillna("(missing)").tolist()
    # `casual|sport`: dropping sport would make it a false negative, blanking the cell would
    # lose casual; the cell is kept. The lone `sport` cell becomes missing.
    assert occasions[5:] == ["casual|sport", "(missing)", "(missing)"]
    sport = next(r for r in pruned.rare_values if r.value == "sport")
    assert (sport.cells, sport.kept_cells) == (1, 1)


def test_pruning_never_turns_a_known_value_into_a_negative_nor_drops_one(taxonomy):
    frame = _frame([(f"{i}.jpg", "top", "red", "casual", "solid") for i in range(3)]
                   + [("x.jpg", "top", "red", "casual|party", "solid"),
                      ("y.jpg", "top", "red", "party", "solid")])
    before = encode_labels(frame, taxonomy).targets["occasion"]
    pruned = prune_rare_values(frame, taxonomy, 3, "missing", {})
    after = encode_labels(pruned.frame, taxonomy).targets["occasion"]
    party = taxonomy.declared_attributes[1].values.index("party")
    assert not np.any((before == 1) & (after == 0))  # no positive became a negative
    casual = taxonomy.declared_attributes[1].values.index("casual")
    assert after[3, casual] == 1  # casual of `casual|party` is kept
    assert after[4, party] == -1  # the lone rare value: missing


def test_rare_values_merge_into_the_fallback(taxonomy):
    pruned = prune_rare_values(_rare_frame(), taxonomy, 3, "fallback", {"colour": "Other"})
    assert pruned.frame["colour"].tolist() == ["red"] * 5 + ["other"] * 3
    actions = {(r.attribute, r.value): r.action for r in pruned.rare_values}
    assert actions[("colour", "green")] == "fallback: other"
    assert actions[("occasion", "sport")] == "missing"  # no fallback for occasion
    assert sum(r.cells for r in pruned.rare_values) == 3 + 1  # `casual|sport` kept


def test_min_count_zero_finds_nothing(taxonomy):
    assert prune_rare_values(_rare_frame(), taxonomy, 0, "missing", {}).rare_values == []


@pytest.mark.parametrize(
    ("fallback", "message"),
    [({"size": "xl"}, "unknown attribute"), ({"colour": "mauve"}, "fallback must be one of")],
)
def test_rare_fallback_is_checked(taxonomy, fallback, message):
    with pytest.raises(CurationError, match=message):
        check_rare_fallback(taxonomy, fallback)
