"""Visual search on the session's trained synthetic run: same product first, filters, CLIs.

Queries are copies of catalog images that are not in the index: re-encoded as JPEG at quality
60, or cropped to their central 95% (re-encoded at quality 95).

Measured on the development machine (40 queries each, 1,200 indexed products of 48 px, three
trainings of the session fixture; see tests/test_apps_catalog.py for the recipes):

| rank-1 rate (same product)  | JPEG q60           | 95% crop           |
|-----------------------------|--------------------|--------------------|
| appearance weight 0 (model) | 0.25 / 0.20 / 0.45 | 0.13 / 0.08 / 0.10 |
| 0.9 (default)               | 1.00 / 0.95 / 0.98 | 0.93 / 0.93 / 0.88 |
| 1.0 (appearance only)       | 1.00 / 1.00 / 1.00 | 0.98 / 0.98 / 0.98 |

The attribute model's embedding groups products by attributes but does not tell two of them
apart, hence the appearance descriptor. One query through `similar` takes about 30 ms.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from kattr.apps import Scorer, SimilarityIndex, index_manifest, similar
from kattr.apps.search import DEFAULT_APPEARANCE_WEIGHT, SearchError

pytestmark = pytest.mark.slow

QUERIES = 40


@pytest.fixture(scope="module")
def indexed(trained_synthetic_run, tmp_path_factory):
    catalog, run_dir = trained_synthetic_run
    root = tmp_path_factory.mktemp("search")
    scorer = Scorer.from_run(run_dir)
    index, failures = index_manifest(catalog.manifest_path, root / "index", scorer,
                                     batch_size=64)
    assert not failures and len(index) == sum(catalog.category_counts.values())
    sample = np.random.default_rng(0).choice(len(index), QUERIES, replace=False)
    copies = {"jpeg60": [], "crop95": []}
    for position in sample:
        image = Image.open(index.metadata["_path"][position]).convert("RGB")
        path = root / f"jpeg60-{position}.jpg"
        image.save(path, quality=60)
        copies["jpeg60"].append(path)
        width, height = image.size
        dx, dy = round(width * 0.025), round(height * 0.025)
        path = root / f"crop95-{position}.jpg"
        image.crop((dx, dy, width - dx, height - dy)).save(path, quality=95)
        copies["crop95"].append(path)
    return SimpleNamespace(root=root, scorer=scorer, index=SimilarityIndex.load(root / "index"),
                           sample=sample, copies=copies)


def test_a_reencoded_or_cropped_copy_finds_its_product_first(indexed):
    rates = {}
    for kind, paths in indexed.copies.items():
        queries = indexed.scorer.score_files(paths, appearance=True)
        for weight in (0.0, DEFAULT_APPEARANCE_WEIGHT, 1.0):
            positions, _ = indexed.index.search(
                queries.embeddings, queries.appearance, k=1, appearance_weight=weight)
            rates[kind, weight] = float(np.mean(positions[:, 0] == indexed.sample))
    print("rank-1 rates:", rates)
    assert rates["jpeg60", DEFAULT_APPEARANCE_WEIGHT] >= 0.85
    assert rates["crop95", DEFAULT_APPEARANCE_WEIGHT] >= 0.65
    assert rates["jpeg60", 1.0] >= 0.9 and rates["crop95", 1.0] >= 0.8
    # Through the public query function too: the first copy's product comes first.
    first = similar(indexed.index, indexed.scorer, indexed.copies["jpeg60"][0], k=5)
    assert first["row"].iloc[0] == indexed.sample[0] + 1
    assert first["distance"].is_monotonic_increasing and len(first) == 5


def test_filters_keep_only_matching_neighbours(indexed, monkeypatch):
    index = indexed.index
    query = index.metadata["_path"][0]  # an indexed image: --same reads its own row
    category = index.metadata["category"][0]
    same = similar(index, indexed.scorer, query, k=10, same=["category"])
    assert (same["category"] == category).all() and same["row"].iloc[0] == 1
    assert same["distance"].iloc[0] == pytest.approx(0.0, abs=1e-5)
    red = similar(index, indexed.scorer, query, k=10, where={"colour": "red", "pattern": "solid"})
    assert len(red) == 10
    assert (red["colour"] == "red").all() and (red["pattern"] == "solid").all()
    rare = similar(index, indexed.scorer, query, k=1000, where={"colour": "purple"})
    assert len(rare) == int((index.metadata["colour"] == "purple").sum())
    with pytest.raises(SearchError, match="unknown column or attribute 'color'"):
        similar(index, indexed.scorer, query, where={"color": "red"})
    # An outside query has no catalog category: --same category follows its top product type,
    # as applicability does everywhere, even when no product type clears its threshold.
    copy = indexed.copies["jpeg60"][0]
    product_types = indexed.scorer.score_files([copy]).scores["product_type"][0]
    top = indexed.scorer.taxonomy.category_attribute.values[int(np.argmax(product_types))]
    monkeypatch.setitem(indexed.scorer.thresholds, "product_type",
                        np.full_like(indexed.scorer.thresholds["product_type"], 2))
    outside = similar(index, indexed.scorer, copy, k=5, same=["category"])
    assert len(outside) == 5 and (outside["category"] == top).all()


def test_same_attribute_of_an_outside_query_is_the_models_prediction(indexed, monkeypatch):
    """--same colour for an image outside the index filters on its predicted colour."""
    index, scorer = indexed.index, indexed.scorer
    copies = indexed.copies["jpeg60"]
    scores = scorer.score_files(copies).scores["colour"]
    confident = np.flatnonzero(scores.max(axis=1) >= scorer.thresholds["colour"].max())
    assert len(confident), "the trained model predicts no colour for any query"
    copy = copies[confident[0]]
    colours = next(a.values for a in scorer.taxonomy.attributes if a.name == "colour")
    predicted = colours[int(scores[confident[0]].argmax())]
    by_colour = similar(index, scorer, copy, k=5, same=["colour"])
    assert len(by_colour) == 5 and (by_colour["colour"] == predicted).all()
    # No value clears the threshold: nothing to filter on, said plainly.
    monkeypatch.setitem(scorer.thresholds, "colour", np.full_like(scorer.thresholds["colour"], 2))
    with pytest.raises(SearchError, match="--same colour: the query has no value"):
        similar(index, scorer, copy, same=["colour"])


def test_similar_cli_prints_json_neighbours_from_the_index_source(indexed, capsys):
    from kattr.cli import similar as similar_cli

    assert indexed.index.source["kind"] == "run"
    code = similar_cli.main([
        str(indexed.copies["crop95"][1]), "--index", str(indexed.root / "index"), "--k", "3",
        "--where", "category=" + indexed.index.metadata["category"][indexed.sample[1]],
        "--format", "json",
    ])
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [record["rank"] for record in records] == [1, 2, 3]
    assert {"distance", "row", "image", "category", "colour"} <= set(records[0])
    code = similar_cli.main([str(indexed.copies["crop95"][1]), "--index",
                             str(indexed.root / "index"), "--k", "2"])
    assert code == 0 and "distance" in capsys.readouterr().out
