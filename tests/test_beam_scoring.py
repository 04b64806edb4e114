"""kattr-batch: Apache Beam RunInference scores equal in-process scores; the apps consume them.

Runs the real pipeline on Beam's DirectRunner over the synthetic catalog (120 images) with a
tiny untrained export, plus a corrupt image, a missing file and a blank image cell.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("apache_beam", reason="apache-beam is not installed (pip install kattr[beam])")

from kattr.apps import (  # noqa: E402
    Scorer,
    beam_scoring,  # noqa: E402
    enrich_manifest,
    manifest_images,
)
from kattr.apps.sources import open_scorer, open_source  # noqa: E402
from kattr.apps.stored_scores import StoredScores  # noqa: E402
from kattr.cli.batch import main as batch_main  # noqa: E402
from kattr.cli.enrich import main as enrich_main  # noqa: E402
from kattr.config import load_config  # noqa: E402
from kattr.export import export_model  # noqa: E402
from kattr.model import build_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax:UserWarning")

TINY = [
    "data.image_size=32",
    "model.backbone=tiny_cnn",
    "model.attention_width=16",
    "model.feedforward_width=16",
    "model.branch_units=[8]",
]


@pytest.fixture(scope="module")
def export_dir(synthetic_catalog, tmp_path_factory):
    """A tiny untrained model of the synthetic taxonomy, exported: only the plumbing matters."""
    config = load_config(synthetic_catalog.config_path, TINY)
    return export_model(build_model(config), config, None, tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="module")
def manifest(synthetic_catalog, tmp_path_factory):
    """The catalog's manifest in two Parquet shards, plus a corrupt file, a missing file and
    a blank image cell (rows 1, 2 and 3 of the second shard)."""
    root = synthetic_catalog.root
    frame = pd.read_csv(synthetic_catalog.manifest_path, dtype=str)
    folder = tmp_path_factory.mktemp("manifest")
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    frame["image"] = [str(root / path) for path in frame["image"]]
    extra = pd.DataFrame({"image": [str(folder / "broken.jpg"), str(folder / "gone.jpg"), None]})
    first, second = frame.iloc[:60], pd.concat([extra, frame.iloc[60:]], ignore_index=True)
    first.to_parquet(folder / "part-0.parquet", index=False)
    second.to_parquet(folder / "part-1.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def batch(export_dir, manifest, tmp_path_factory):
    output = tmp_path_factory.mktemp("batch") / "scores"
    result = beam_scoring.score_on_beam(
        [manifest / "part-*.parquet"], export_dir, output, batch_size=16, appearance=True,
        pipeline_args=["--runner=DirectRunner"],
    )
    return result


def all_paths(manifest):
    paths = []
    for shard in sorted(manifest.glob("part-*.parquet")):
        frame = pd.read_parquet(shard)
        paths += [path for path in frame["image"] if isinstance(path, str)]
    return paths


def test_beam_scores_equal_in_process_scores_for_every_row(batch, export_dir, manifest):
    paths = all_paths(manifest)
    assert batch.scored == len(paths) - 2  # every readable image
    stored = StoredScores.open(batch.output).score_files(paths, appearance=True)
    with Scorer.from_model_dir(export_dir) as scorer:
        direct = scorer.score_files(paths, batch_size=7, appearance=True)
    assert [f.row for f in stored.failures] == [f.row for f in direct.failures] == [60, 61]
    for name, values in direct.scores.items():
        np.testing.assert_allclose(stored.scores[name], values, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(stored.embeddings, direct.embeddings, atol=1e-5)
    np.testing.assert_allclose(stored.appearance, direct.appearance, atol=1e-5)
    assert len(set(map(tuple, np.round(stored.scores["colour"][:60], 4)))) > 1


def test_bad_images_and_blank_cells_are_counted_and_named_by_row(batch, manifest):
    assert batch.failed == 3
    reasons = {(f["manifest"].rsplit("/", 1)[-1], f["row"]): f["reason"] for f in batch.failures}
    assert set(reasons) == {("part-1.parquet", 0), ("part-1.parquet", 1), ("part-1.parquet", 2)}
    assert reasons[("part-1.parquet", 0)].startswith("cannot decode")
    assert reasons[("part-1.parquet", 1)] == "file not found"
    assert reasons[("part-1.parquet", 2)] == "blank image path"
    record = json.loads((Path(batch.output) / "batch.json").read_text())
    assert (record["scored"], record["failed"]) == (batch.scored, 3)
    assert record["metadata"]["taxonomy"]["attributes"][0]["name"] == "colour"


def test_enrichment_from_stored_scores_equals_enrichment_from_the_export(
    batch, export_dir, synthetic_catalog, tmp_path
):
    manifest = synthetic_catalog.manifest_path
    with StoredScores.open(batch.output) as stored:
        from_batch = enrich_manifest(manifest, tmp_path / "a.csv", stored)
    with open_scorer(model_dir=export_dir) as scorer:
        from_export = enrich_manifest(manifest, tmp_path / "b.csv", scorer)
    assert from_batch.summary == from_export.summary
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a.csv").drop(columns=[c for c in pd.read_csv(tmp_path / "a.csv")
                                                      if c.endswith("_score")]),
        pd.read_csv(tmp_path / "b.csv").drop(columns=[c for c in pd.read_csv(tmp_path / "b.csv")
                                                      if c.endswith("_score")]),
    )
    status = enrich_main([str(manifest), "--scores", str(batch.output),
                          "--output", str(tmp_path / "c.csv")])
    assert status == 0 and (tmp_path / "c.csv").exists()


def test_rows_the_batch_never_saw_and_views_are_clear_errors(batch, manifest, tmp_path):
    stored = StoredScores.open(batch.output)
    scored_path = all_paths(manifest)[0]
    with pytest.raises(ValueError, match=r"row 2 \(.*elsewhere.jpg\) was not scored"):
        stored.score_files([scored_path, str(tmp_path / "elsewhere.jpg")])
    with pytest.raises(ValueError, match="test-time views"):
        stored.score_files([], view="flip")
    # An index built from stored scores embeds its queries with the model that made them.
    with open_source(stored.source) as reopened:
        assert reopened.source["kind"] == "model_dir"


def test_an_unfinished_or_earlier_run_is_refused(batch, export_dir, manifest, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(batch.output, partial)
    (partial / "batch.json").unlink()
    with pytest.raises(FileNotFoundError, match="batch.json"):
        StoredScores.open(partial)
    with pytest.raises(ValueError, match="earlier kattr-batch run"):
        beam_scoring.score_on_beam([manifest / "part-0.parquet"], export_dir, batch.output)
    with pytest.raises(FileNotFoundError, match="no manifest matches"):
        beam_scoring.score_on_beam([tmp_path / "none-*.csv"], export_dir, tmp_path / "out")


def test_cli_scores_a_csv_manifest_and_reports_failures(
    export_dir, synthetic_catalog, tmp_path, capsys
):
    frame, paths = manifest_images(synthetic_catalog.manifest_path)
    small = tmp_path / "small.csv"
    frame.iloc[:10].assign(image=paths[:10]).to_csv(small, index=False)
    status = batch_main([str(small), "--model-dir", str(export_dir),
                         "--output", str(tmp_path / "out"), "--", "--direct_num_workers=1"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "scored 10 image(s), 0 failed" in printed
    assert StoredScores.open(tmp_path / "out").score_files(paths[:10]).scores["colour"].shape == (
        10, 6)
