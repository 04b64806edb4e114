"""Versions, hot swap, failed loads, warmup replay and request checks of the model store."""

from __future__ import annotations

import shutil

import grpc
import numpy as np
import pytest
from serving_support import expected_scores, image_bytes, publish_version

from kattr.server.errors import ServingError
from kattr.server.model_store import ModelStore
from kattr.server.protos import VersionStatus, message_to_json, status_response
from kattr.tf_serving_requests import predict_request

RED = (255, 0, 0)


def predict_embedding(store: ModelStore, colour=RED) -> np.ndarray:
    servable = store.servable(store.name)
    inputs = {"image_bytes": np.array([image_bytes(colour)], dtype=object)}
    return servable.predict(inputs, output_filter=["embedding"])["embedding"][0]


@pytest.fixture(scope="module")
def versions_dir(tmp_path_factory):
    """Saved versions to copy from: scale 1, scale 2, and one whose warmup request is invalid."""
    root = tmp_path_factory.mktemp("versions") / "source"
    publish_version(root, 1, embedding_scale=1.0)
    publish_version(root, 2, embedding_scale=2.0)
    bad_warmup = [predict_request({"image_bytes": [b"not an image"]})]
    publish_version(root, 3, embedding_scale=3.0, warmup_requests=bad_warmup)
    return root


def copy_version(versions_dir, base_path, source: int, target: int) -> None:
    base_path.mkdir(parents=True, exist_ok=True)
    staging = base_path.parent / f".staging-{target}"
    shutil.copytree(versions_dir / str(source), staging)
    staging.rename(base_path / str(target))


def test_serves_the_highest_integer_version_and_ignores_other_names(versions_dir, tmp_path):
    base = tmp_path / "shirts"
    copy_version(versions_dir, base, 1, 1)
    copy_version(versions_dir, base, 2, 7)
    shutil.copytree(versions_dir / "2", base / "8.tmp")
    (base / "latest").mkdir()
    store = ModelStore(base)
    store.poll()
    assert store.name == "shirts"
    assert store.current_version == 7
    assert store.statuses("shirts") == [VersionStatus(7, "AVAILABLE")]
    np.testing.assert_allclose(predict_embedding(store), 2 * expected_scores(RED)["colour"])


def test_new_version_replaces_the_old_one_only_after_loading(versions_dir, tmp_path):
    base = tmp_path / "shirts"
    copy_version(versions_dir, base, 1, 1)
    store = ModelStore(base)
    store.poll()
    old = store.servable("shirts")
    copy_version(versions_dir, base, 2, 2)
    store.poll()
    assert store.current_version == 2
    assert store.statuses("shirts") == [VersionStatus(2, "AVAILABLE"), VersionStatus(1, "END")]
    # A request that resolved the old version before the swap still completes on it.
    inputs = {"image_bytes": np.array([image_bytes(RED)], dtype=object)}
    np.testing.assert_allclose(old.predict(inputs)["embedding"][0], [1.0, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(predict_embedding(store), [2.0, 0.0, 0.0], atol=1e-5)


def test_background_polling_picks_up_a_new_version(versions_dir, tmp_path):
    base = tmp_path / "shirts"
    copy_version(versions_dir, base, 1, 1)
    store = ModelStore(base, poll_interval_seconds=0.05)
    store.start()
    try:
        copy_version(versions_dir, base, 2, 2)
        assert store.wait_for_version(2, timeout=20).version == 2
    finally:
        store.stop()


def test_failed_warmup_keeps_the_old_version_serving(versions_dir, tmp_path):
    base = tmp_path / "shirts"
    copy_version(versions_dir, base, 1, 1)
    store = ModelStore(base, max_num_load_retries=0)
    store.poll()
    copy_version(versions_dir, base, 3, 3)
    store.poll()
    failed = store.statuses("shirts", 3)[0]
    assert (failed.state, failed.error_code) == ("END", "INVALID_ARGUMENT")
    assert "warmup request 0 failed" in failed.error_message
    assert "Unknown image file format" in failed.error_message
    assert store.current_version == 1
    np.testing.assert_allclose(predict_embedding(store), [1.0, 0.0, 0.0], atol=1e-5)
    reported = message_to_json(status_response(store.statuses("shirts")))["model_version_status"]
    assert [(entry["version"], entry["state"], entry["status"]["error_code"])
            for entry in reported] == [("3", "END", "INVALID_ARGUMENT"), ("1", "AVAILABLE", "OK")]


def test_without_warmup_the_same_version_loads(versions_dir, tmp_path):
    base = tmp_path / "shirts"
    copy_version(versions_dir, base, 3, 3)
    store = ModelStore(base, enable_warmup=False)
    store.poll()
    assert store.current_version == 3


def test_given_up_version_is_retried_only_when_its_files_change(versions_dir, tmp_path, caplog):
    base = tmp_path / "shirts"
    copy_version(versions_dir, base, 1, 1)
    store = ModelStore(base, max_num_load_retries=0)
    store.poll()
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"half written")
    store.poll()
    assert store.current_version == 1
    assert store.statuses("shirts", 2)[0].state == "END"
    caplog.clear()
    store.poll()
    assert "loading version 2" not in caplog.text  # not retried while unchanged
    shutil.rmtree(base / "2")
    copy_version(versions_dir, base, 2, 2)
    store.poll()
    assert store.current_version == 2
    assert store.statuses("shirts", 2) == [VersionStatus(2, "AVAILABLE")]


def test_removing_every_version_unloads_the_model(versions_dir, tmp_path):
    base = tmp_path / "shirts"
    copy_version(versions_dir, base, 1, 1)
    store = ModelStore(base)
    store.poll()
    shutil.rmtree(base / "1")
    store.poll()
    assert store.current_version is None
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(shirts\)"):
        store.servable("shirts")


@pytest.fixture(scope="module")
def store(versions_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("store") / "shirts"
    copy_version(versions_dir, base, 1, 1)
    store = ModelStore(base)
    store.poll()
    return store


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (lambda s: s.servable("pants"), "NOT_FOUND", "request: Latest(pants)"),
        (lambda s: s.servable("shirts", 4), "NOT_FOUND", "request: Specific(shirts, 4)"),
        (lambda s: s.servable("shirts", label="stable"), "INVALID_ARGUMENT", "label: stable"),
        (lambda s: s.statuses("pants"), "NOT_FOUND", "Could not find any versions of model pants"),
        (lambda s: s.statuses("shirts", 4), "NOT_FOUND", "Could not find version 4 of model"),
    ],
)
def test_lookups_fail_as_tf_serving_does(store, call, code, message):
    with pytest.raises(ServingError) as raised:
        call(store)
    assert raised.value.code.name == code
    assert message in raised.value.message


CHECKED_REQUESTS = [
    # inputs, signature, output filter, code, message
    ({"image": [b"x"]}, "", (), "INVALID_ARGUMENT",
     "Signature input alias: image_bytes(feed name: serving_default_image_bytes:0) not found"),
    ({"image_bytes": [b"x"], "id": [1]}, "", (), "INVALID_ARGUMENT",
     "input size does not match signature: 2!=1 len({id,image_bytes}) != len({image_bytes}). "
     "Sent extra: {id}. Missing but required: {}."),
    ({"image_bytes": np.array([1.0], np.float32)}, "", (), "INVALID_ARGUMENT",
     "to be string but float32"),
    ({"image_bytes": np.array([[b"x"]], dtype=object)}, "", (), "INVALID_ARGUMENT",
     "signature expects [?]"),
    ({"images": np.zeros((1, 8, 8, 3), np.float32)}, "predict_images", (), "INVALID_ARGUMENT",
     "expects [?,32,32,3]"),
    ({"image_bytes": [b"x"]}, "nope", (), "FAILED_PRECONDITION",
     'Serving signature key "nope" not found.'),
    ({"image_bytes": [image_bytes(RED)]}, "", ["colour"], "INVALID_ARGUMENT",
     "output tensor alias not found in signature: colour"),
    ({"image_bytes": [b"not an image"]}, "", (), "INVALID_ARGUMENT",
     "Unknown image file format"),
]


@pytest.mark.parametrize(
    ("inputs", "signature", "output_filter", "code", "message"), CHECKED_REQUESTS
)
def test_requests_are_checked_against_the_signature(
    store, inputs, signature, output_filter, code, message
):
    arrays = {name: np.asarray(value, dtype=object if isinstance(value, list) else None)
              for name, value in inputs.items()}
    with pytest.raises(ServingError) as raised:
        store.servable("shirts").predict(arrays, signature, output_filter)
    assert raised.value.code == getattr(grpc.StatusCode, code)
    assert message in raised.value.message
    assert not raised.value.message.startswith("Graph execution error")


def test_predict_images_signature_gives_the_mean_colour(store):
    images = np.zeros((2, 32, 32, 3), np.float32)
    images[0, ..., 1] = 255.0
    outputs = store.servable("shirts").predict({"images": images}, "predict_images")
    np.testing.assert_allclose(outputs["colour_scores"], [[0, 1, 0], [0, 0, 0]], atol=1e-6)
    assert outputs["colour_labels"].tolist() == [[b"", b"green", b""], [b"", b"", b""]]
