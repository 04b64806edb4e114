"""Catalog applications on hand-made scores: no model, exact expectations.

Enrichment, audit ranking, annotation selection, k-center greedy, the similarity index, the
row alignment of `Scorer.score_files`, and the error messages of the APIs and CLIs.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kattr.apps import CatalogScores, Scorer, enrich, k_center_greedy, manifest_images, select
from kattr.apps.audit import QUEUE_COLUMNS, audit
from kattr.apps.enrich import enrich_manifest, summary_table
from kattr.apps.scoring import ImageDecodeError, view_bytes
from kattr.apps.search import SearchError, SimilarityIndex, parse_where
from kattr.apps.selection import AGGREGATES, STRATEGIES, attribute_uncertainty
from kattr.config import config_from_dict
from kattr.labels import LabelError, is_blank, write_manifest
from kattr.postprocess import thresholds_for

TAXONOMY = config_from_dict({
    "data": {},
    "taxonomy": {
        "category_column": "category",
        "categories": ["tshirt", "bag"],
        "attributes": [
            {"name": "colour", "values": ["red", "blue", "green"]},
            {"name": "sleeve", "values": ["short", "long"], "applies_to": ["tshirt"]},
            {"name": "occasion", "values": ["casual", "party"], "exclusive": False},
        ],
    },
}).taxonomy


def make_scores(frame, scores, embeddings=None, failed=(), thresholds=None):
    """CatalogScores for `frame` with the given per-attribute scores (0.5 thresholds)."""
    count = len(frame)
    full = {a.name: np.full((count, len(a.values)), 0.1, np.float32) for a in TAXONOMY.attributes}
    for name, values in scores.items():
        full[name] = np.asarray(values, np.float32)
    if embeddings is None:
        embeddings = np.eye(count, 4, dtype=np.float32) + 0.01
    from kattr.apps.scoring import ImageFailure

    failures = [ImageFailure(row, f"img{row}.png", "file not found") for row in failed]
    for row in failed:
        for name in full:
            full[name][row] = np.nan
    return CatalogScores(
        scores=full, embeddings=np.asarray(embeddings, np.float32), taxonomy=TAXONOMY,
        thresholds=thresholds_for(TAXONOMY, thresholds),
        paths=[f"img{i}.png" for i in range(count)], failures=failures, source={"kind": "test"},
    )


def cells(series):
    """A column's cells with blanks (None, NaN) as None."""
    return [None if is_blank(value) else value for value in series]


def manifest(rows):
    return pd.DataFrame(rows, columns=["image", "category", "colour", "sleeve", "occasion"])


# --- enrichment


def test_enrich_fills_blank_applicable_cells_with_decided_values_and_provenance():
    frame = manifest([
        ["a.png", "tshirt", None, None, None],      # everything blank: filled where confident
        ["b.png", "bag", None, None, "casual"],     # sleeve does not apply to bags
        ["c.png", "tshirt", "red", "long", None],   # catalog values are kept
        ["d.png", "tshirt", None, None, None],      # unsure: left blank
    ])
    scores = make_scores(frame, {
        "colour": [[0.1, 0.9, 0.2], [0.8, 0.1, 0.1], [0.1, 0.9, 0.1], [0.4, 0.3, 0.2]],
        "sleeve": [[0.7, 0.2], [0.9, 0.1], [0.9, 0.1], [0.3, 0.4]],
        "occasion": [[0.6, 0.8], [0.9, 0.9], [0.9, 0.1], [0.2, 0.1]],
    })
    result = enrich(frame, scores)
    out = result.frame
    assert cells(out["colour"]) == ["blue", "red", "red", None]
    assert out["colour_source"].tolist() == ["model", "model", "catalog", ""]
    assert out["colour_score"].tolist() == ["0.9000", "0.8000", "", ""]
    assert cells(out["sleeve"]) == ["short", None, "long", None]
    assert out["sleeve_source"].tolist() == ["model", "", "catalog", ""]
    # Multi-label: every value over its threshold, the weakest score reported.
    assert out.loc[0, "occasion"] == "casual|party" and out.loc[0, "occasion_score"] == "0.6000"
    assert out.loc[1, "occasion"] == "casual" and out.loc[1, "occasion_source"] == "catalog"
    assert result.summary["colour"] == {"blank": 3, "filled": 2, "left_blank": 1,
                                        "failed_images": 0}
    assert result.summary["sleeve"] == {"blank": 2, "filled": 1, "left_blank": 1,
                                        "failed_images": 0}
    assert "colour" in summary_table(result.summary)
    # The input frame is not modified.
    assert frame["colour"].isna().sum() == 3


def test_enrich_min_score_is_stricter_and_failed_images_stay_blank():
    frame = manifest([["a.png", "tshirt", None, "long", "casual"],
                      ["b.png", "tshirt", None, "long", "casual"]])
    scores = make_scores(frame, {"colour": [[0.7, 0.1, 0.1], [0.95, 0.1, 0.1]]}, failed=[1])
    assert cells(enrich(frame, scores).frame["colour"]) == ["red", None]
    strict = enrich(frame, scores, min_score=0.8)
    assert strict.frame["colour"].isna().all()
    assert strict.summary["colour"] == {"blank": 2, "filled": 0, "left_blank": 2,
                                        "failed_images": 1}
    with pytest.raises(ValueError, match="min_score must be in"):
        enrich(frame, scores, min_score=1.5)


def test_enriching_an_enriched_manifest_keeps_model_provenance():
    frame = manifest([["a.png", "tshirt", None, "long", "casual"]])
    scores = make_scores(frame, {"colour": [[0.1, 0.9, 0.1]]})
    once = enrich(frame, scores).frame
    twice = enrich(once, scores).frame
    assert twice.loc[0, "colour_source"] == "model" and twice.loc[0, "colour_score"] == "0.9000"


def test_enrich_manifest_never_overwrites_its_input(tmp_path):
    path = tmp_path / "labels.csv"
    write_manifest(manifest([["a.png", "tshirt", None, None, None]]), path)
    with pytest.raises(ValueError, match="never overwrites its input"):
        enrich_manifest(path, tmp_path / "." / "labels.csv", scorer=None)


def test_enrich_applicability_follows_the_catalog_category_else_the_predicted_product_type():
    frame = manifest([
        ["a.png", "bag", "red", None, "casual"],   # catalog says bag although tshirt predicted
        ["b.png", None, "red", None, "casual"],    # no category: tshirt predicted (0.9)
        ["c.png", None, "red", None, "casual"],    # no category: bag best (0.4), too low to fill
        ["d.png", None, "red", None, "casual"],    # no category and the image failed
    ])
    scores = make_scores(frame, {
        "sleeve": [[0.9, 0.1]] * 4,
        "product_type": [[0.9, 0.1], [0.9, 0.1], [0.2, 0.4], [0.9, 0.1]],
    }, failed=[3])
    result = enrich(frame, scores)
    out = result.frame
    assert cells(out["sleeve"]) == [None, "short", None, None]
    assert out["applicability_category"].tolist() == ["bag", "tshirt", "bag", ""]
    assert out["applicability_source"].tolist() == ["catalog", "model", "model", ""]
    assert result.applicability == {"catalog": 1, "model": 2, "unknown": 1}
    # The blank category cell is filled from the product type, with provenance.
    assert cells(out["category"]) == ["bag", "tshirt", None, None]
    assert out["product_type_source"].tolist() == ["catalog", "model", "", ""]
    assert out["product_type_score"].tolist() == ["", "0.9000", "", ""]
    assert result.summary["product_type"] == {"blank": 3, "filled": 1, "left_blank": 2,
                                              "failed_images": 1}
    assert result.summary["sleeve"]["blank"] == 1
    # Enriched again: the filled category still counts as the model's.
    again = enrich(out, scores)
    assert again.frame["applicability_source"].tolist() == ["catalog", "model", "model", ""]


def test_audit_checks_cells_whose_category_is_predicted_to_apply():
    frame = manifest([
        ["a.png", None, "red", "long", "casual"],  # predicted tshirt: sleeve audited
        ["b.png", None, "red", "long", "casual"],  # predicted bag: sleeve does not apply
    ])
    scores = make_scores(frame, {
        "colour": [[0.9, 0.1, 0.1]] * 2, "sleeve": [[0.9, 0.1]] * 2,
        "occasion": [[0.9, 0.1]] * 2, "product_type": [[0.8, 0.1], [0.1, 0.8]],
    })
    result = audit(frame, scores)
    assert result.checked["sleeve"] == 1
    assert result.queue[["row", "attribute"]].values.tolist() == [[1, "sleeve"]]


# --- audit


def test_audit_ranks_confident_contradictions_by_margin_and_agreement():
    frame = manifest([
        ["a.png", "tshirt", "red", "long", "casual"],   # strong contradiction: blue 0.95
        ["b.png", "tshirt", "red", "long", "casual"],   # weaker: blue 0.7 vs red 0.45
        ["c.png", "tshirt", "red", "long", "casual"],   # agrees with the catalog
        ["d.png", "tshirt", "red", "long", "casual"],   # no confident prediction
        ["e.png", "bag", "green", None, "casual"],      # contradiction whose views disagree
        ["f.png", "tshirt", "pink", "long", "casual"],  # unknown value: not audited
    ])
    colour = [[0.05, 0.95, 0.1], [0.45, 0.7, 0.1], [0.9, 0.1, 0.1], [0.3, 0.2, 0.1],
              [0.1, 0.99, 0.01], [0.1, 0.99, 0.1]]
    scores = make_scores(frame, {"colour": colour,
                                 "sleeve": [[0.1, 0.9]] * 6, "occasion": [[0.9, 0.1]] * 6})
    plain = audit(frame, scores)
    assert list(plain.queue.columns) == QUEUE_COLUMNS
    assert plain.queue["row"].tolist() == [5, 1, 2]
    second = plain.queue.iloc[1]
    assert (second["catalog_value"], second["predicted_value"]) == ("red", "blue")
    assert second["margin"] == pytest.approx(0.9) and second["agreement"] == 1.0
    assert plain.checked == {"colour": 5, "sleeve": 5, "occasion": 6, "product_type": 6}
    # Views: row 5's mirrored and cropped copies predict green, so its evidence drops to a third
    # (0.98 / 3), below row 1's (0.9) but still above row 2's (0.25).
    flipped = [row[:] for row in colour]
    flipped[4] = [0.1, 0.2, 0.9]
    views = [make_scores(frame, {"colour": flipped, "sleeve": [[0.1, 0.9]] * 6,
                                 "occasion": [[0.9, 0.1]] * 6})] * 2
    with_views = audit(frame, scores, views=views)
    assert with_views.queue["row"].tolist() == [1, 5, 2]
    assert with_views.queue.iloc[1]["agreement"] == pytest.approx(1 / 3, abs=1e-4)
    assert audit(frame, scores, top=1).queue["row"].tolist() == [5]
    assert audit(frame, scores, min_score=0.9).queue["row"].tolist() == [5, 1]
    with pytest.raises(ValueError, match="top must be >= 1"):
        audit(frame, scores, top=0)


def test_audit_multi_label_uses_the_probability_of_the_value_set():
    frame = manifest([["a.png", "tshirt", "red", "long", "casual"]])
    scores = make_scores(frame, {"colour": [[0.9, 0.1, 0.1]], "sleeve": [[0.1, 0.9]],
                                 "occasion": [[0.9, 0.8]]})
    row = audit(frame, scores).queue.iloc[0]
    assert (row["attribute"], row["catalog_value"], row["predicted_value"]) == (
        "occasion", "casual", "casual|party")
    assert row["predicted_score"] == pytest.approx(0.9 * 0.8, abs=1e-4)
    assert row["catalog_score"] == pytest.approx(0.9 * 0.2, abs=1e-4)


# --- selection


def test_select_prefers_uncertain_rows_with_blank_cells_and_respects_the_budget():
    frame = manifest([
        ["sure.png", "tshirt", None, "long", "casual"],
        ["unsure.png", "tshirt", None, "long", "casual"],
        ["labelled.png", "tshirt", "red", "long", "casual"],  # nothing to fill
        ["half.png", "bag", None, None, "party"],             # sleeve n/a: colour only
    ])
    colour = [[0.98, 0.01, 0.01], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.6, 0.5, 0.1]]
    scores = make_scores(frame, {"colour": colour})
    for strategy in STRATEGIES:
        result = select(frame, scores, budget=2, strategy=strategy)
        assert result.queue["image"].tolist() == ["unsure.png", "half.png"], strategy
        assert result.queue["rank"].tolist() == [1, 2]
        assert result.candidates == 3
    everything = select(frame, scores, budget=10)
    assert len(everything.queue) == 3 and "labelled.png" not in everything.queue["image"].tolist()
    # Same columns as the manifest, blank cells kept blank, then uncertainty and rank.
    assert list(everything.queue.columns) == [*frame.columns, "uncertainty", "rank"]
    assert everything.queue["colour"].isna().all()
    assert everything.queue["uncertainty"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="budget must be an integer >= 1"):
        select(frame, scores, budget=0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        select(frame, scores, budget=1, strategy="random")


def test_select_diversify_skips_near_duplicates():
    frame = manifest([[f"{i}.png", "bag", None, None, "casual"] for i in range(4)])
    colour = [[0.5, 0.5, 0.5], [0.5, 0.5, 0.49], [0.5, 0.49, 0.49], [0.6, 0.4, 0.3]]
    embeddings = [[1, 0], [0.999, 0.01], [0.998, 0.02], [0, 1]]  # rows 0-2 look alike
    scores = make_scores(frame, {"colour": colour}, embeddings=embeddings)
    assert select(frame, scores, budget=2).rows.tolist() == [0, 1]
    assert select(frame, scores, budget=2, diversify=True, pool_factor=2).rows.tolist() == [0, 3]


def test_select_diversify_spreads_away_from_already_labelled_rows():
    # Rows 0-1 are uncertain but look like the labelled row 4; rows 2-3 are new looks.
    frame = manifest([
        ["0.png", "bag", None, None, "casual"],
        ["1.png", "bag", None, None, "casual"],
        ["2.png", "bag", None, None, "casual"],
        ["3.png", "bag", None, None, "casual"],
        ["labelled.png", "bag", "red", None, "party"],  # every applicable cell filled
    ])
    colour = [[0.5, 0.5, 0.5], [0.5, 0.5, 0.49], [0.5, 0.49, 0.48], [0.6, 0.4, 0.3],
              [0.5, 0.5, 0.5]]
    embeddings = [[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]
    scores = make_scores(frame, {"colour": colour}, embeddings=embeddings)
    result = select(frame, scores, budget=2, diversify=True, pool_factor=1)
    assert result.rows.tolist() == [1, 0]  # pool rows 0-1: row 1 is farther from row 4
    result = select(frame, scores, budget=2, diversify=True, pool_factor=2)
    assert result.rows.tolist() == [2, 3]  # both unlike the labelled row
    assert "labelled.png" not in result.queue["image"].tolist()


def test_select_diversify_never_picks_a_row_twice_with_identical_embeddings():
    frame = manifest([[f"{i}.png", "bag", None, None, "casual"] for i in range(6)])
    colour = [[0.5, 0.5, 0.5 - i / 100] for i in range(6)]
    scores = make_scores(frame, {"colour": colour}, embeddings=np.ones((6, 3)) / np.sqrt(3))
    result = select(frame, scores, budget=3, diversify=True, pool_factor=2)
    assert result.rows.tolist() == [0, 1, 2]  # all alike: uncertainty order, no repeats
    assert result.queue["rank"].tolist() == [1, 2, 3]


def test_uncertainty_is_zero_when_sure_and_one_at_chance():
    colour, _, occasion = TAXONOMY.declared_attributes
    scores = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    entropy = attribute_uncertainty(scores, colour, np.full(3, 0.5), "entropy")
    margin = attribute_uncertainty(scores, colour, np.full(3, 0.5), "margin")
    np.testing.assert_allclose(entropy, [0.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(margin, [0.0, 1.0], atol=1e-4)
    binary = attribute_uncertainty(np.array([[1.0, 0.0], [0.5, 0.5]]), occasion,
                                   np.full(2, 0.5), "entropy")
    np.testing.assert_allclose(binary, [0.0, 1.0], atol=1e-4)


def test_k_center_greedy_picks_the_farthest_point_each_time():
    points = np.array([[0.0], [0.1], [5.0], [10.0], [10.1]])
    assert k_center_greedy(points, 3).tolist() == [0, 4, 2]
    assert k_center_greedy(points, 9).tolist()[:5] == [0, 4, 2, 1, 3]
    # Already covered points (e.g. labelled products) count as centres.
    assert k_center_greedy(points, 2, centers=np.array([[0.0], [10.0]])).tolist() == [2, 1]
    assert len(k_center_greedy(points, 0)) == 0


def test_k_center_greedy_never_repeats_a_pick_when_points_coincide():
    points = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert k_center_greedy(points, 4).tolist() == [0, 2, 1, 3]
    covered = k_center_greedy(points, 3, centers=np.array([[1.0, 0.0]]))
    assert covered.tolist() == [2, 0, 1]


def test_cli_choices_match_the_api():
    from kattr.apps.search import DEFAULT_APPEARANCE_WEIGHT
    from kattr.cli import select as select_cli
    from kattr.cli import similar as similar_cli

    assert select_cli.STRATEGIES == STRATEGIES and select_cli.AGGREGATES == AGGREGATES
    assert similar_cli.DEFAULT_APPEARANCE_WEIGHT == DEFAULT_APPEARANCE_WEIGHT


# --- scoring: row alignment and failures


def png_bytes(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_score_files_keeps_rows_aligned_and_names_failed_images(tmp_path):
    (tmp_path / "red.png").write_bytes(png_bytes((255, 0, 0)))
    (tmp_path / "blue.png").write_bytes(png_bytes((0, 0, 255)))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    calls = []

    def predict(images):
        calls.append(len(images))
        if any(not data.startswith(b"\x89PNG") for data in images):
            raise ImageDecodeError("cannot decode")
        red = [Image.open(io.BytesIO(data)).getpixel((0, 0))[0] / 255 for data in images]
        scores = {a.name: np.tile(np.array(red)[:, None], (1, len(a.values)))
                  for a in TAXONOMY.attributes}
        return scores, np.array([[r, 1.0] for r in red])

    scorer = Scorer(predict, TAXONOMY, thresholds_for(TAXONOMY), {"kind": "test"})
    paths = [tmp_path / name for name in ("red.png", "missing.png", "broken.png", "blue.png")]
    result = scorer.score_files(paths, batch_size=3)
    assert [(f.row, f.reason) for f in result.failures] == [
        (1, "file not found"), (2, "cannot decode: cannot decode")]
    assert result.scored.tolist() == [True, False, False, True]
    assert result.scores["colour"][:, 0].tolist()[0] == 1.0
    assert np.isnan(result.scores["colour"][1:3]).all() and result.scores["colour"][3, 0] == 0
    np.testing.assert_allclose(np.linalg.norm(result.embeddings[[0, 3]], axis=1), 1.0, rtol=1e-6)
    assert calls == [2, 1, 1, 1]  # the refused batch was retried image by image
    assert "row 2:" in result.failure_lines()[0]
    flipped = scorer.score_files(paths[:1], view="flip")
    assert flipped.scored.all()
    with pytest.raises(ValueError, match="view must be one of"):
        view_bytes(png_bytes((0, 0, 0)), "rotate")


def test_manifest_images_names_the_missing_column_and_blank_rows(tmp_path):
    path = tmp_path / "labels.csv"
    write_manifest(pd.DataFrame({"picture": ["a.png"], "category": ["bag"]}), path)
    with pytest.raises(LabelError, match="no image column 'image'.*picture"):
        manifest_images(path)
    write_manifest(pd.DataFrame({"image": ["a.png", ""], "category": ["bag", "bag"]}), path)
    with pytest.raises(LabelError, match="row 2, column 'image': blank image path"):
        manifest_images(path)
    write_manifest(pd.DataFrame({"image": ["a.png", "/abs/b.png"]}), path)
    frame, paths = manifest_images(path, image_root="/data")
    assert paths == ["/data/a.png", "/abs/b.png"] and len(frame) == 2
    assert manifest_images(path)[1][0] == str(tmp_path / "a.png")


def test_apps_name_the_columns_the_taxonomy_needs():
    frame = pd.DataFrame({"image": ["a.png"], "category": ["bag"], "colour": ["red"]})
    scores = make_scores(manifest([["a.png", "bag", "red", None, None]]), {})
    with pytest.raises(LabelError, match=r"lacks column\(s\) \['sleeve', 'occasion'\]"):
        enrich(frame, scores)


# --- similarity index


def small_index(block_rows=65536):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(7, 4)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    appearance = rng.normal(size=(7, 768)).astype(np.float32)
    appearance /= np.linalg.norm(appearance, axis=1, keepdims=True)
    metadata = manifest([
        [f"{i}.png", "tshirt" if i % 2 else "bag", ["red", "blue"][i % 2 == 0],
         "long" if i % 2 else None, "casual|party" if i == 3 else "casual"]
        for i in range(7)
    ])
    metadata["_row"] = [str(i + 1) for i in range(7)]
    metadata["_path"] = [f"/abs/{i}.png" for i in range(7)]
    return SimilarityIndex(embeddings, appearance, metadata, TAXONOMY, {"kind": "test"},
                           block_rows=block_rows)


@pytest.mark.parametrize("weight", [0.0, 0.75, 1.0])
def test_index_search_is_exact_and_blocks_do_not_change_it(weight):
    index, blocked = small_index(), small_index(block_rows=2)
    queries, query_appearance = index.embeddings[[3, 5]], index.appearance[[3, 5]]
    positions, distances = index.search(queries, query_appearance, k=7, appearance_weight=weight)
    assert positions[:, 0].tolist() == [3, 5]
    np.testing.assert_allclose(distances[:, 0], 0.0, atol=1e-5)
    assert (np.diff(distances, axis=1) >= -1e-6).all()
    expected = 1 - ((1 - weight) * queries @ index.embeddings.T
                    + weight * query_appearance @ index.appearance.T)
    np.testing.assert_allclose(np.sort(expected, axis=1), distances, atol=1e-5)
    blocked_positions, blocked_distances = blocked.search(
        queries, query_appearance, k=3, appearance_weight=weight)
    np.testing.assert_array_equal(blocked_positions, positions[:, :3])
    np.testing.assert_allclose(blocked_distances, distances[:, :3], atol=1e-6)


def test_index_filters_saves_and_loads(tmp_path):
    index = small_index(block_rows=3)
    red = index.mask({"colour": "RED"})
    assert red.tolist() == [i % 2 == 1 for i in range(7)]
    assert index.mask({"occasion": "party"}).tolist() == [i == 3 for i in range(7)]
    assert index.mask({"category": ["bag", "tshirt"]}).all()
    positions, _ = index.search(index.embeddings[0], index.appearance[0], k=10, mask=red)
    assert sorted(positions[0].tolist()) == [1, 3, 5]
    index.save(tmp_path / "index")
    loaded = SimilarityIndex.load(tmp_path / "index")
    assert isinstance(loaded.embeddings, np.memmap) and len(loaded) == 7
    assert loaded.source == {"kind": "test"} and loaded.metadata["_row"].tolist()[0] == "1"
    np.testing.assert_allclose(
        loaded.search(index.embeddings[2], index.appearance[2], k=3)[1],
        index.search(index.embeddings[2], index.appearance[2], k=3)[1], atol=1e-6,
    )
    index.save(tmp_path / "index")  # an existing index is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(SearchError, match="is not a kattr index"):
        index.save(tmp_path / "other")
    with pytest.raises(SearchError, match="not a kattr index"):
        SimilarityIndex.load(tmp_path / "other")


def test_index_filter_errors_name_the_column_or_value():
    index = small_index()
    with pytest.raises(SearchError, match="unknown column or attribute 'color'.*'colour'"):
        index.mask({"color": "red"})
    with pytest.raises(SearchError, match="'pink' is not a value of attribute 'colour'"):
        index.mask({"colour": "pink"})
    with pytest.raises(SearchError, match="'shoe' is not a category"):
        index.mask({"category": "shoe"})
    with pytest.raises(SearchError, match="expected COLUMN=VALUE"):
        parse_where(["colour"])
    assert parse_where(["colour=red", "colour=blue", "category=bag"]) == {
        "colour": ["red", "blue"], "category": ["bag"]}
    with pytest.raises(SearchError, match="appearance_weight must be in"):
        index.search(index.embeddings[0], index.appearance[0], appearance_weight=2.0)
    with pytest.raises(SearchError, match="k must be >= 1"):
        index.search(index.embeddings[0], index.appearance[0], k=0)


def smaller_index():
    """Another index, told apart from `small_index` by its length and source."""
    old = small_index()
    return SimilarityIndex(np.ascontiguousarray(old.embeddings[:4]),
                           np.ascontiguousarray(old.appearance[:4]), old.metadata.iloc[:4],
                           TAXONOMY, {"kind": "new"})


def write_flat_index(index, directory):
    """An index in the layout kattr wrote before versioned indexes: the files in the folder."""
    import json

    from kattr._schema import to_data

    directory.mkdir(parents=True)
    np.save(directory / "embeddings.npy", np.asarray(index.embeddings, np.float32))
    np.save(directory / "appearance.npy", np.asarray(index.appearance, np.float32))
    write_manifest(index.metadata, directory / "metadata.csv")
    (directory / "index.json").write_text(json.dumps({
        "format": 1, "backend": "numpy-exact", "metric": "cosine", "count": len(index),
        "width": index.width, "appearance_width": int(index.appearance.shape[1]),
        "source": index.source, "taxonomy": to_data(index.taxonomy),
    }))


def assert_same_index(loaded, expected):
    assert len(loaded) == len(expected) and loaded.source == expected.source
    np.testing.assert_array_equal(loaded.embeddings, expected.embeddings)
    np.testing.assert_array_equal(loaded.appearance, expected.appearance)
    assert loaded.metadata["_path"].tolist() == expected.metadata["_path"].tolist()


def version_folders(directory):
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and p.name.startswith("v-"))


class Crash(BaseException):
    """A simulated process death (not an Exception: nothing may swallow it)."""


def save_old(layout, directory):
    old = small_index()
    if layout == "flat":
        write_flat_index(old, directory)
    else:
        old.save(directory)
    return old


@pytest.mark.parametrize("layout", ["versioned", "flat"])
def test_readers_during_a_replace_always_find_a_whole_index(tmp_path, monkeypatch, layout):
    import os
    import shutil

    directory = tmp_path / "index"
    old, new = save_old(layout, directory), smaller_index()
    seen = []

    def load_now():
        loaded = SimilarityIndex.load(directory)
        assert_same_index(loaded, old if len(loaded) == len(old) else new)
        seen.append(len(loaded))

    real_replace, real_rmtree = os.replace, shutil.rmtree

    def replace_then_read(*args, **kwargs):
        real_replace(*args, **kwargs)
        load_now()

    def rmtree_then_read(*args, **kwargs):
        real_rmtree(*args, **kwargs)
        load_now()

    monkeypatch.setattr(os, "replace", replace_then_read)
    monkeypatch.setattr(shutil, "rmtree", rmtree_then_read)
    new.save(directory)
    new.save(directory)  # the second save also removes the first version (or the flat files)
    monkeypatch.undo()
    assert seen[0] == 7 and seen[-1] == 4 and set(seen) == {7, 4}
    assert_same_index(SimilarityIndex.load(directory), new)
    assert len(version_folders(directory)) == 2  # the live version and the one it replaced
    assert not (directory / "index.json").exists()  # the flat files went with their version


@pytest.mark.parametrize("layout", ["versioned", "flat"])
@pytest.mark.parametrize("hard", [False, True], ids=["exception", "hard-crash"])
def test_a_crash_at_any_step_of_a_replace_leaves_the_old_or_the_new_index(
    tmp_path, monkeypatch, layout, hard
):
    import os
    import shutil

    real_replace = os.replace
    step = 0
    while True:  # crash at the 1st, 2nd, ... rename of a save, until a save completes
        directory = tmp_path / f"step{step}"
        old, new = save_old(layout, directory), smaller_index()
        calls = []

        def crash_at_step(*args, step=step, calls=calls, **kwargs):
            calls.append(args)
            if len(calls) > step:
                raise Crash
            real_replace(*args, **kwargs)

        monkeypatch.setattr(os, "replace", crash_at_step)
        if hard:  # a dead process cleans nothing up
            monkeypatch.setattr(shutil, "rmtree", lambda *args, **kwargs: None)
        try:
            new.save(directory)
            completed = True
        except Crash:
            completed = False
        monkeypatch.undo()
        loaded = SimilarityIndex.load(directory)
        assert_same_index(loaded, new if completed else old)
        del loaded
        newest = smaller_index()
        newest.source = {"kind": "newest"}
        newest.save(directory)  # the next save works and deletes what the crash left behind
        assert_same_index(SimilarityIndex.load(directory), newest)
        assert len(version_folders(directory)) <= 2
        assert not [p.name for p in directory.iterdir() if ".tmp" in p.name]
        if completed:
            break
        step += 1
    assert step >= 2  # the save had several steps to crash in


def test_a_crash_while_deleting_old_versions_keeps_the_new_index(tmp_path, monkeypatch):
    from kattr.apps import search

    directory = tmp_path / "index"
    small_index().save(directory)
    smaller_index().save(directory)

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(search, "_remove_versions", crash)
    newest = smaller_index()
    newest.source = {"kind": "newest"}
    with pytest.raises(Crash):
        newest.save(directory)
    monkeypatch.undo()
    assert_same_index(SimilarityIndex.load(directory), newest)
    assert len(version_folders(directory)) == 3
    smaller_index().save(directory)
    assert len(version_folders(directory)) == 2


def test_a_reader_of_a_replaced_index_keeps_working(tmp_path):
    import os

    directory = tmp_path / "index"
    old = small_index()
    old.save(directory)
    reader = SimilarityIndex.load(directory)
    (first,) = version_folders(directory)
    query = (old.embeddings[[2, 5]], old.appearance[[2, 5]])
    expected = old.search(*query, k=3)
    smaller_index().save(directory)
    assert first in version_folders(directory)  # kept until the next save
    np.testing.assert_array_equal(reader.search(*query, k=3)[0], expected[0])
    smaller_index().save(directory)
    assert first not in version_folders(directory)
    if os.name != "nt":  # POSIX: a mapped file outlives its unlinking
        positions, distances = reader.search(*query, k=3)
        np.testing.assert_array_equal(positions, expected[0])
        np.testing.assert_allclose(distances, expected[1], atol=1e-6)
        assert_same_index(reader, old)


def test_load_follows_the_pointer_when_a_save_removes_the_version_it_opens(
    tmp_path, monkeypatch
):
    directory = tmp_path / "index"
    small_index().save(directory)
    real = SimilarityIndex._load_version.__func__
    saves = []

    def racing(cls, folder, block_rows):
        if not saves:  # two saves land between reading CURRENT and opening the files
            saves.append(folder.name)
            smaller_index().save(directory)
            smaller_index().save(directory)
            assert not folder.exists()
        return real(cls, folder, block_rows)

    monkeypatch.setattr(SimilarityIndex, "_load_version", classmethod(racing))
    assert len(SimilarityIndex.load(directory)) == 4 and saves


def test_an_index_in_the_flat_layout_loads_and_is_replaced(tmp_path):
    directory = tmp_path / "index"
    old = small_index()
    write_flat_index(old, directory)
    assert_same_index(SimilarityIndex.load(directory), old)
    new = smaller_index()
    new.save(directory)
    assert_same_index(SimilarityIndex.load(directory), new)
    assert (directory / "index.json").exists()  # the replaced version stays one save longer
    new.save(directory)
    assert sorted(p.name for p in directory.iterdir() if not p.is_dir()) == ["CURRENT"]
    assert_same_index(SimilarityIndex.load(directory), new)


def test_a_damaged_index_is_named(tmp_path):
    directory = tmp_path / "index"
    small_index().save(directory)
    (live,) = version_folders(directory)
    (directory / "CURRENT").write_text("../elsewhere\n")
    with pytest.raises(SearchError, match="not a version folder"):
        SimilarityIndex.load(directory)
    (directory / "CURRENT").write_text(live + "\n")
    (directory / live / "appearance.npy").unlink()
    with pytest.raises(SearchError, match=r"incomplete \(appearance.npy is missing\)"):
        SimilarityIndex.load(directory)
    (directory / "CURRENT").write_text("garbage\n")
    smaller_index().save(directory)  # saving over a damaged index repairs it
    assert_same_index(SimilarityIndex.load(directory), smaller_index())
    assert len(version_folders(directory)) == 1


def test_clis_reject_bad_arguments_before_loading_a_model(tmp_path, capsys):
    from kattr.cli import select as select_cli
    from kattr.cli import similar as similar_cli

    path = tmp_path / "labels.csv"
    write_manifest(manifest([["a.png", "tshirt", None, None, None]]), path)
    code = select_cli.main([str(path), "--run", str(tmp_path / "no-run"), "--budget", "0",
                            "--output", str(tmp_path / "queue.csv")])
    assert code == 2 and "--budget must be >= 1" in capsys.readouterr().err
    small_index().save(tmp_path / "index")
    code = similar_cli.main(["q.png", "--index", str(tmp_path / "index"), "--where", "size=xl"])
    assert code == 2 and "unknown column or attribute 'size'" in capsys.readouterr().err
    code = similar_cli.main(["q.png", "--index", str(tmp_path / "index"), "--k", "0"])
    assert code == 2 and "--k must be >= 1" in capsys.readouterr().err


def test_open_scorer_needs_exactly_one_source_and_server_metadata():
    from kattr.apps import open_scorer, open_source

    with pytest.raises(ValueError, match="exactly one model source"):
        open_scorer()
    with pytest.raises(ValueError, match="exactly one model source"):
        open_scorer(run="runs/a", model_dir="exports/a")
    with pytest.raises(ValueError, match="--model-name is required"):
        open_scorer(rest="http://127.0.0.1:1", values_from="exports/a")
    with pytest.raises(ValueError, match="--values-from is required"):
        open_scorer(grpc="127.0.0.1:1", model_name="shirts")
    with pytest.raises(ValueError, match="unknown model source kind 'ftp'"):
        open_source({"kind": "ftp"})


def test_export_metadata_without_category_output_predicts_no_product_type():
    from kattr._schema import to_data
    from kattr.apps.scoring import taxonomy_from_metadata

    full = to_data(TAXONOMY)  # as kattr-export writes it: every output, product type included
    taxonomy, thresholds = taxonomy_from_metadata({"taxonomy": full})
    assert taxonomy == TAXONOMY and taxonomy.category_attribute.name == "product_type"
    legacy = {k: v for k, v in full.items() if k != "category_output"}
    legacy["attributes"] = full["attributes"][:3]  # an export made before the product type
    taxonomy, thresholds = taxonomy_from_metadata({"taxonomy": legacy})
    assert taxonomy.category_attribute is None and "product_type" not in thresholds
