"""One label-cell parser: every reader of a manifest label cell reads the same values from it.

Training targets (`encode_labels`), curation (`clean_labels`), the catalog applications
(`catalog_sets`, Label Studio) and the search index (`SimilarityIndex.cell_values` and its
filters) all go through `kattr.labels.cell_values`; these tests feed each the same tricky cells
and check they agree with what training reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kattr import labels
from kattr.apps._cells import applicability_categories, catalog_sets
from kattr.apps.labelstudio import _cell_values as queue_cell_values
from kattr.apps.labelstudio_review import _cell_set as review_cell_set
from kattr.apps.search import SimilarityIndex
from kattr.config import config_from_dict
from kattr.curation.label_values import clean_labels
from kattr.labels import MISSING, category_of, decode_targets, encode_labels, is_blank

TAXONOMY = config_from_dict({
    "data": {},
    "taxonomy": {
        "category_column": "category",
        "categories": ["tshirt", "bag"],
        "category_merge": {"Tee": "tshirt"},
        "attributes": [
            {"name": "colour", "values": ["red", "blue"]},
            {"name": "occasion", "values": ["casual", "party"], "exclusive": False,
             "merge": {"Evening": "party"}},
        ],
    },
}).taxonomy
OCCASION = next(a for a in TAXONOMY.attributes if a.name == "occasion")

BLANKS = [None, float("nan"), np.float32("nan"), pd.NA, "", "   ", "\t"]

# cell -> the values training reads from it, in cell order (case and whitespace folded, empty
# parts skipped, synonyms merged, repeats dropped).
OCCASION_CELLS = [
    (" casual | party ", ["casual", "party"]),
    ("party|casual|party", ["party", "casual"]),
    ("Casual", ["casual"]),
    ("CASUAL |  Evening", ["casual", "party"]),
    ("evening|party", ["party"]),
    ("casual||party|", ["casual", "party"]),
    (" | ", []),
    *[(blank, []) for blank in BLANKS],
]
CATEGORY_CELLS = [
    (" TShirt ", "tshirt"),
    ("tee", "tshirt"),
    ("  Bag", "bag"),
    *[(blank, None) for blank in BLANKS],
]


def one_row(category="tshirt", occasion="casual") -> pd.DataFrame:
    return pd.DataFrame(
        {"image": ["a.png"], "category": [category], "colour": ["red"], "occasion": [occasion]},
        dtype=object,
    )


def index_of(frame: pd.DataFrame) -> SimilarityIndex:
    metadata = frame.assign(_row="1", _path="/abs/a.png")
    return SimilarityIndex(np.ones((1, 4), np.float32), np.ones((1, 768), np.float32),
                           metadata, TAXONOMY, {"kind": "test"})


def training(frame):
    target = encode_labels(frame, TAXONOMY).targets["occasion"][0]
    return decode_targets(target, OCCASION) or []


def curation(frame):
    cell = clean_labels(frame, TAXONOMY, on_unknown="error").frame.loc[0, "occasion"]
    return [] if cell is None else cell.split(TAXONOMY.separator)


def apps_catalog_sets(frame):
    sets, known = catalog_sets(frame, OCCASION, TAXONOMY.separator)
    values = [v for v, held in zip(OCCASION.values, sets[0], strict=True) if held]
    assert known[0] == bool(values)
    return values


def search_index(frame):
    index = index_of(frame)
    values = index.cell_values("occasion")[0]
    for value in OCCASION.values:
        assert index.mask({"occasion": value.upper()})[0] == (value in values)
    return values


def label_studio(frame):
    cell = frame.loc[0, "occasion"]
    values = queue_cell_values(cell, OCCASION, TAXONOMY.separator, "queue row 1")
    assert set(values) == review_cell_set(cell, OCCASION, TAXONOMY.separator)
    return values


def parser(frame):
    cell = frame.loc[0, "occasion"]
    assert labels.column_values(cell, "occasion", TAXONOMY) == labels.cell_values(
        cell, TAXONOMY.separator, OCCASION.merge)
    return labels.column_values(cell, "occasion", TAXONOMY)


READERS = {
    "parser": parser, "training": training, "curation": curation,
    "apps_catalog_sets": apps_catalog_sets, "search_index": search_index,
    "label_studio": label_studio,
}
ORDERED = {"parser", "curation", "label_studio"}  # readers that keep the cell's order


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("cell", "expected"), OCCASION_CELLS, ids=repr)
def test_every_reader_reads_the_same_values_from_a_multi_valued_cell(reader, cell, expected):
    values = READERS[reader](one_row(occasion=cell))
    if reader in ORDERED:
        assert list(values) == expected
    else:
        assert set(values) == set(expected)


@pytest.mark.parametrize(("cell", "expected"), CATEGORY_CELLS, ids=repr)
def test_every_reader_reads_the_same_category(cell, expected):
    frame = one_row(category=cell)
    assert category_of(cell, TAXONOMY) == expected
    assert labels.column_values(cell, "category", TAXONOMY) == (
        [] if expected is None else [expected])
    product_type = encode_labels(frame, TAXONOMY).targets["product_type"][0]
    if expected is None:
        assert (product_type == MISSING).all()
    else:
        assert decode_targets(product_type, TAXONOMY.category_attribute) == [expected]
    assert clean_labels(frame, TAXONOMY, on_unknown="error").frame.loc[0, "category"] == expected
    index, source = applicability_categories(frame, TAXONOMY)
    assert index[0] == (-1 if expected is None else TAXONOMY.categories.index(expected))
    search = index_of(frame)
    assert search.cell_values("category")[0] == ({expected} - {None})
    if expected is not None:
        assert search.mask({"category": cell})[0]


def test_a_category_cell_is_one_value_even_with_the_separator_in_it():
    # "tshirt|bag" is an unknown category for training, never two categories.
    frame = one_row(category="tshirt|bag")
    assert category_of("tshirt|bag", TAXONOMY) == "tshirt|bag"
    assert encode_labels(frame, TAXONOMY, on_unknown="missing").unknown == [
        (0, "category", "tshirt|bag")]
    assert index_of(frame).cell_values("category")[0] == {"tshirt|bag"}


@pytest.mark.parametrize("blank", BLANKS, ids=repr)
def test_is_blank_covers_every_missing_marker(blank):
    assert is_blank(blank)


@pytest.mark.parametrize("value", ["x", "0", 0, 0.0, "nan ?"], ids=repr)
def test_is_blank_keeps_values(value):
    assert not is_blank(value)


def test_merges_are_counted_per_replaced_part():
    from collections import Counter

    merged = Counter()
    assert labels.cell_values("Evening|evening|casual", "|", OCCASION.merge, merged) == [
        "party", "casual"]
    assert merged == Counter({("evening", "party"): 2})
    cleaned = clean_labels(one_row(category="Tee", occasion="evening"), TAXONOMY, "error")
    assert {(m.column, m.source, m.target, m.cells) for m in cleaned.merges} == {
        ("category", "tee", "tshirt", 1), ("occasion", "evening", "party", 1)}
