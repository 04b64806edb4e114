"""The TF Serving export: parity with Keras + post-processing on every loading path, the graph's
ops, versioning, metadata and warmup, and serving by kattr-serve (and TF Serving if installed)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from serving_support import KATTR_SERVE, start_server
from tensorflow.core.protobuf import saved_model_pb2

from kattr.cli.export import main as export_main
from kattr.client.model_files import METADATA_PATH, image_shape_from_metadata, read_value_names
from kattr.config import AttributeConfig, config_from_dict, save_config
from kattr.export import ExportError, ServingModule, export_model, export_run
from kattr.images import decode_and_resize, decode_image
from kattr.model import build_model, embedding_model, zoom_view
from kattr.postprocess import decide_attributes
from kattr.run_dir import RunDir, load_run
from kattr.server.servable import Servable, read_signature_defs
from kattr.tf_serving_requests import WARMUP_PATH, read_warmup_requests

SIZE = 32
VALUES = {
    "colour": ["red", "blue", "green"],
    "occasion": ["casual", "party"],
    "product_type": ["top", "shoe"],  # taxonomy.category_output, on by default
}
PREDICT_METHOD = "tensorflow/serving/predict"


def make_config(
    base_dir: Path, image_size: int | list[int] = SIZE, backbone: str = "tiny_cnn", **model
):
    """The test taxonomy on the tiny test backbone, or `backbone` (and more `model` settings)."""
    return config_from_dict(
        {
            "data": {"image_size": image_size},
            "taxonomy": {
                "category_column": "category",
                "categories": ["top", "shoe"],
                "attributes": [
                    {"name": "colour", "values": VALUES["colour"]},
                    {"name": "occasion", "values": VALUES["occasion"], "exclusive": False},
                ],
            },
            "model": {
                "backbone": backbone, "branch_units": [16, 8], "attention_width": 32,
                "feedforward_width": 32, **model,
            },
        },
        base_dir=base_dir,
    )


def encoded_images() -> list[bytes]:
    """Random-noise pictures in every format the signature takes, square and not, grey, RGBA."""
    rng = np.random.default_rng(0)
    pictures = [
        ("PNG", "RGB", (32, 32)), ("JPEG", "RGB", (48, 40)), ("BMP", "RGB", (20, 36)),
        ("GIF", "RGB", (32, 32)), ("PNG", "L", (30, 30)), ("PNG", "RGBA", (24, 32)),
    ]
    encoded = []
    for image_format, mode, (width, height) in pictures:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, image_format)
        encoded.append(buffer.getvalue())
    return encoded


def keras_reference(config, model, thresholds, encoded) -> dict[str, np.ndarray]:
    """The Keras path: eager decode/resize, the model, numpy post-processing, labels by hand."""
    images = np.stack([decode_and_resize(tf.constant(data), SIZE).numpy() for data in encoded])
    scores = {name: keras.ops.convert_to_numpy(value) for name, value in model(images).items()}
    embedding = keras.ops.convert_to_numpy(embedding_model(model)(images))
    reference = {"embedding": embedding / np.linalg.norm(embedding, axis=1, keepdims=True)}
    # Applicability follows the predicted product type, as at serving.
    all_decisions = decide_attributes(scores, config.taxonomy, thresholds)
    for attribute in config.taxonomy.attributes:
        name = attribute.name
        decisions = all_decisions[name]
        reference[f"{name}_scores"] = scores[name]
        reference[f"{name}_labels"] = np.where(decisions, np.array(attribute.values), "")
    return reference


def gap_thresholds(scores: np.ndarray) -> list[float]:
    """Per value, the middle of the widest gap between the images' scores: labels then differ
    between images, and no score sits near a threshold."""
    thresholds = []
    for column in np.sort(scores, axis=0).T:
        widest = int(np.argmax(np.diff(column)))
        thresholds.append(float((column[widest] + column[widest + 1]) / 2))
    return thresholds


def assert_parity(outputs: dict, reference: dict) -> None:
    """Outputs equal the Keras reference; `image_ok` (serving_default) is True for every image."""
    outputs = dict(outputs)
    if "image_ok" in outputs:
        np.testing.assert_array_equal(np.asarray(outputs.pop("image_ok")), True)
    assert sorted(outputs) == sorted(reference)
    for name, expected in reference.items():
        actual = np.asarray(outputs[name])
        if name.endswith("_labels"):
            assert actual.dtype == object, name
            np.testing.assert_array_equal(actual.astype(str), expected, err_msg=name)
        else:
            assert actual.dtype == np.float32, name
            np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return encoded_images()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, images) -> Path:
    """A fake finished run: config.yaml, model.keras, and thresholds.json with per-value
    thresholds placed so that the test images get different labels."""
    root = tmp_path_factory.mktemp("run")
    config = make_config(root)
    model = build_model(config)
    batch = np.stack([decode_and_resize(tf.constant(data), SIZE).numpy() for data in images])
    scores = model(batch)
    thresholds = {
        name: gap_thresholds(keras.ops.convert_to_numpy(value)) for name, value in scores.items()
    }
    run = RunDir(root)
    save_config(config, run.config)
    model.save(run.model)
    run.thresholds.write_text(json.dumps(thresholds))
    return root


@pytest.fixture(scope="module")
def trained(run_dir):
    """`(config, model, thresholds)` of the run, as `load_run` gives them."""
    return load_run(run_dir)


@pytest.fixture(scope="module")
def reference(trained, images) -> dict[str, np.ndarray]:
    result = keras_reference(*trained, images)
    for name in VALUES:
        labels = {tuple(row) for row in result[f"{name}_labels"]}
        assert len(labels) > 1, f"{name}: every test image got the same labels {labels}"
    return result


@pytest.fixture(scope="module")
def base_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def export_dir(run_dir, base_path) -> Path:
    """The run exported once by the `kattr-export` CLI; tests must not modify it."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = export_main(["--run", str(run_dir), "--base-path", str(base_path)])
    assert status == 0
    assert printed.getvalue().strip() == str(base_path / "kattr" / "1")
    return base_path / "kattr" / "1"


@pytest.fixture(scope="module")
def loaded(export_dir):
    return tf.saved_model.load(str(export_dir))


def test_signatures_follow_the_serving_contract(export_dir):
    signatures = read_signature_defs(export_dir)
    expected_inputs = {
        "serving_default": {"image_bytes": ("string", [-1])},
        "predict_images": {"images": ("float32", [-1, -1, -1, 3])},
    }
    expected_outputs = {"embedding": ("float32", [-1, 32])}
    for name, values in VALUES.items():
        expected_outputs[f"{name}_scores"] = ("float32", [-1, len(values)])
        expected_outputs[f"{name}_labels"] = ("string", [-1, len(values)])

    def described(tensors):
        return {
            key: (tf.as_dtype(info.dtype).name, [dim.size for dim in info.tensor_shape.dim])
            for key, info in tensors.items()
        }

    assert {"serving_default", "predict_images"} <= set(signatures)
    for signature_name, inputs in expected_inputs.items():
        signature = signatures[signature_name]
        assert signature.method_name == PREDICT_METHOD
        assert described(signature.inputs) == inputs
        extra = {"image_ok": ("bool", [-1])} if signature_name == "serving_default" else {}
        assert described(signature.outputs) == {**expected_outputs, **extra}


def test_serving_default_matches_keras_and_postprocessing(loaded, images, reference):
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    assert_parity({name: value.numpy() for name, value in outputs.items()}, reference)
    norms = np.linalg.norm(outputs["embedding"].numpy(), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_bytes_that_do_not_decode_are_flagged_without_failing_the_batch(
    loaded, images, reference
):
    corrupt = images[1][:20] + b"\0" * 50 + images[1][70:]  # a JPEG header, a broken body
    garbage = [b"not an image", b"", corrupt, images[0][: len(images[0]) // 3]]
    batch = [garbage[0], images[0], garbage[1], *images[1:], *garbage[2:]]
    outputs = {name: value.numpy() for name, value in
               loaded.signatures["serving_default"](image_bytes=tf.constant(batch)).items()}
    good = [1, *range(3, 3 + len(images) - 1)]
    bad = [0, 2, len(batch) - 2, len(batch) - 1]
    np.testing.assert_array_equal(outputs["image_ok"][good], True)
    np.testing.assert_array_equal(outputs["image_ok"][bad], False)
    assert_parity({name: value[good] for name, value in outputs.items()}, reference)
    for name, value in outputs.items():
        if name.endswith("_labels"):
            assert (value[bad] == b"").all(), name
        elif name != "image_ok":
            np.testing.assert_array_equal(value[bad], 0.0, err_msg=name)


def test_clients_name_the_rows_that_are_not_images(export_dir, images, tmp_path):
    from kattr.apps import Scorer
    from kattr.client import PredictClient

    files = []
    for index, data in enumerate([images[0], b"plain text", images[1]]):
        files.append(tmp_path / f"{index}.jpg")
        files[-1].write_bytes(data)
    with PredictClient.from_model_dir(export_dir) as client:
        records = list(client.predict_files(files, batch_size=3))
    assert [("error" in record, "attributes" in record) for record in records] == [
        (False, True), (True, False), (False, True)]
    assert "not a decodable JPEG, PNG" in records[1]["error"]
    with Scorer.from_model_dir(export_dir) as scorer:
        scored = scorer.score_files(files, batch_size=3)
    assert [(f.row, f.reason) for f in scored.failures] == [
        (1, "cannot decode: not a decodable JPEG, PNG, GIF, BMP or WebP image")]
    assert np.isfinite(scored.embeddings[[0, 2]]).all()


def test_predict_images_matches_bytes_for_model_sized_and_other_pixels(loaded, images, reference):
    function = loaded.signatures["predict_images"]
    model_sized = np.stack([decode_and_resize(tf.constant(data), SIZE).numpy() for data in images])
    assert_parity({k: v.numpy() for k, v in function(images=model_sized).items()}, reference)
    # A caller that decodes itself (a 48x40 JPEG here) gets the training resize in the graph.
    decoded = decode_image(tf.constant(images[1])).numpy().astype(np.float32)[np.newaxis]
    outputs = function(images=tf.constant(decoded))
    one = {name: value[1:2] for name, value in reference.items()}
    assert_parity({name: value.numpy() for name, value in outputs.items()}, one)


def test_session_loader_of_saved_model_cli_matches(export_dir, images, reference, tmp_path):
    """`saved_model_cli run` loads with TF1 sessions, as TF Serving does (no tf.saved_model)."""
    cli = Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip(f"{cli} not found")
    inputs = tmp_path / "image_bytes.npy"
    np.save(inputs, np.array(images, dtype=object), allow_pickle=True)
    completed = subprocess.run(
        [
            str(cli), "run", "--dir", str(export_dir), "--tag_set", "serve",
            "--signature_def", "serving_default", "--inputs", f"image_bytes={inputs}",
            "--outdir", str(tmp_path / "out"),
        ],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outputs = {
        path.stem: np.load(path, allow_pickle=True) for path in (tmp_path / "out").glob("*.npy")
    }
    assert_parity(outputs, reference)


def graph_violations(export_dir: Path) -> list[str]:
    """Ops that are not core TensorFlow ops, and functions marked for XLA compilation, in every
    graph and function of `saved_model.pb`."""
    path = export_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    violations = []
    for meta_graph in saved_model.meta_graphs:
        library = meta_graph.graph_def.library.function
        function_names = {function.signature.name for function in library}
        graphs = [("graph", meta_graph.graph_def.node)]
        graphs += [(function.signature.name, function.node_def) for function in library]
        for function in library:
            if function.attr["_XlaMustCompile"].b:
                violations.append(f"{function.signature.name}: _XlaMustCompile")
        for graph_name, nodes in graphs:
            for node in nodes:
                if node.op not in function_names and not hasattr(tf.raw_ops, node.op):
                    violations.append(f"{graph_name}/{node.name}: op {node.op} is not core")
                if node.attr["_XlaMustCompile"].b:
                    violations.append(f"{graph_name}/{node.name}: _XlaMustCompile")
    return violations


def test_graph_holds_core_ops_only_and_no_xla(export_dir, tmp_path):
    assert graph_violations(export_dir) == []

    class Compiled(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)], jit_compile=True)
        def double(self, values):
            return {"doubled": values * 2.0}

    compiled = Compiled()
    tf.saved_model.save(compiled, str(tmp_path), signatures=compiled.double.get_concrete_function())
    assert any("_XlaMustCompile" in violation for violation in graph_violations(tmp_path))


def test_metadata_and_warmup_describe_the_run(export_dir, loaded, base_path, run_dir, trained):
    config, _, thresholds = trained
    metadata = json.loads((export_dir / METADATA_PATH).read_text())
    assert read_value_names(base_path / "kattr") == VALUES
    assert metadata["image_size"] == [SIZE, SIZE]  # always [height, width]
    assert metadata["thresholds"] == {name: value.tolist() for name, value in thresholds.items()}
    assert metadata["thresholds"] == json.loads(RunDir(run_dir).thresholds.read_text())
    assert config_from_dict(metadata["config"]) == config
    requests = read_warmup_requests(export_dir / WARMUP_PATH)
    assert {request.model_spec.signature_name for request in requests} == {
        "serving_default", "predict_images",
    }
    batch_sizes = [
        len(request.inputs["image_bytes"].string_val)
        for request in requests
        if "image_bytes" in request.inputs  # reading a missing key would insert it
    ]
    assert max(batch_sizes) > 1
    servable = Servable(
        "kattr", 1, export_dir, loaded.signatures, read_signature_defs(export_dir), loaded
    )
    assert servable.warmup(requests) == len(requests)


@pytest.mark.parametrize("kind", [KATTR_SERVE, "tensorflow_model_server"])
def test_served_model_answers_rest_predict_like_in_process(
    kind, base_path, export_dir, loaded, images
):
    expected = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    document = {"instances": [{"b64": base64.b64encode(data).decode()} for data in images]}
    with start_server(kind, base_path / "kattr") as server:
        request = urllib.request.Request(
            f"{server.rest_url}/v1/models/kattr:predict", data=json.dumps(document).encode()
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.load(response)["predictions"]
    assert len(predictions) == len(images)
    for index, prediction in enumerate(predictions):
        assert sorted(prediction) == sorted(expected)
        for name, value in expected.items():
            row = value.numpy()[index]
            if name.endswith("_labels"):
                assert prediction[name] == row.astype(str).tolist()
            else:
                np.testing.assert_allclose(prediction[name], row, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_settings", [{}, {"colour_histogram_bins": 16}])
def test_efficientnet_export_matches_keras_with_core_ops_only(tmp_path, images, model_settings):
    """The tests above export the tiny test backbone; the real backbone exports the same way,
    with or without the colour statistics next to the embedding."""
    config = make_config(tmp_path, backbone="efficientnetb0", **model_settings)
    model = build_model(config)
    exported = export_model(model, config, None, tmp_path)
    assert graph_violations(exported) == []
    pixels = np.stack([decode_and_resize(tf.constant(data), SIZE).numpy() for data in images])
    served = tf.saved_model.load(str(exported)).signatures["serving_default"](
        image_bytes=tf.constant(images)
    )
    scores = model(pixels)
    # A pixel on a histogram bin edge may fall either side in the graph and in eager mode.
    tolerance = 1e-4 if model_settings else 1e-5
    for name in VALUES:
        np.testing.assert_allclose(
            served[f"{name}_scores"].numpy(), keras.ops.convert_to_numpy(scores[name]),
            rtol=0, atol=tolerance,
        )
    embedding = keras.ops.convert_to_numpy(embedding_model(model)(pixels))
    np.testing.assert_allclose(
        served["embedding"].numpy(),
        embedding / np.linalg.norm(embedding, axis=1, keepdims=True), atol=1e-5,
    )


# Versioning and dtypes, on a small stand-in Keras model with the same interface (fast export).


def small_model(config, dtype: str = "float32") -> keras.Model:
    image = keras.Input((*config.data.image_shape, 3), name="image")
    features = keras.layers.Conv2D(4, 3, dtype=dtype)(keras.layers.Rescaling(1 / 255)(image))
    pooled = keras.layers.GlobalAveragePooling2D(name="embedding", dtype=dtype)(features)
    outputs = {
        a.name: keras.layers.Dense(len(a.values), activation="sigmoid", name=a.name, dtype=dtype)(
            pooled
        )
        for a in config.taxonomy.attributes
    }
    return keras.Model(image, outputs)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    config = make_config(tmp_path_factory.mktemp("small"))
    return small_model(config), config


def test_versions_are_renamed_into_place_at_the_next_free_number(small, tmp_path, monkeypatch):
    model, config = small
    assert export_model(model, config, None, tmp_path) == tmp_path / "kattr" / "1"
    (tmp_path / "kattr" / "3").mkdir()
    (tmp_path / "kattr" / "7").write_text("a file, not a version")
    (tmp_path / "kattr" / "12b").mkdir()
    renames, rename = [], os.rename

    def checked_rename(source, target):
        source, target = Path(source), Path(target)
        assert source.parent == target.parent == tmp_path / "kattr"
        assert not source.name.isdigit() and not target.exists()
        for part in ("saved_model.pb", "variables/variables.index", METADATA_PATH, WARMUP_PATH):
            assert (source / part).is_file(), part
        renames.append((source, target))
        rename(source, target)

    monkeypatch.setattr("kattr.export.os.rename", checked_rename)
    exported = export_model(model, config, {"colour": 0.3}, tmp_path)
    assert exported == tmp_path / "kattr" / "4"
    assert renames == [(renames[0][0], exported)]
    assert sorted(path.name for path in (tmp_path / "kattr").iterdir()) == [
        "1", "12b", "3", "4", "7",
    ]


def test_existing_version_is_refused_and_left_untouched(small, tmp_path):
    model, config = small
    exported = export_model(model, config, None, tmp_path, name="shirts", version=5)
    before = {path: path.read_bytes() for path in exported.rglob("*") if path.is_file()}
    with pytest.raises(ExportError, match="version 5 exists"):
        export_model(model, config, {"colour": 0.9}, tmp_path, name="shirts", version=5)
    # export_run checks before loading the run: this run directory does not even exist.
    with pytest.raises(ExportError, match="version 5 exists"):
        export_run(tmp_path / "no-run", tmp_path, name="shirts", version=5)
    assert {path: path.read_bytes() for path in exported.rglob("*") if path.is_file()} == before
    assert sorted(path.name for path in (tmp_path / "shirts").iterdir()) == ["5"]


def test_failed_export_leaves_neither_version_nor_staging(small, tmp_path, monkeypatch):
    model, config = small

    def failing_warmup(*arguments):
        raise OSError("disk full")

    monkeypatch.setattr("kattr.export.write_warmup_requests", failing_warmup)
    with pytest.raises(OSError, match="disk full"):
        export_model(model, config, None, tmp_path)
    assert list((tmp_path / "kattr").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [("a/b", None, "name"), ("", None, "name"), ("..", None, "name"),
     ("kattr", 0, "version"), ("kattr", -2, "version"), ("kattr", True, "version")],
)
def test_invalid_names_and_versions_are_rejected(small, tmp_path, name, version, message):
    model, config = small
    with pytest.raises(ExportError, match=message):
        export_model(model, config, None, tmp_path, name=name, version=version)
    assert not any(tmp_path.iterdir())


def test_model_that_does_not_match_the_taxonomy_is_rejected(small, tmp_path):
    model, config = small
    other = make_config(tmp_path)
    other.taxonomy.attributes[0].values = ["red", "blue"]
    with pytest.raises(ExportError, match="colour"):
        ServingModule(model, other)


def test_portrait_export_answers_image_bytes_of_any_size(tmp_path, images):
    config = make_config(tmp_path, image_size=[48, 32])  # height 48, width 32
    model = small_model(config)
    exported = export_model(model, config, None, tmp_path)
    metadata = json.loads((exported / METADATA_PATH).read_text())
    assert metadata["image_size"] == [48, 32]
    assert image_shape_from_metadata(metadata) == (48, 32)
    assert image_shape_from_metadata({"image_size": 32}) == (32, 32)  # older exports
    loaded = tf.saved_model.load(str(exported))
    # The test images are 32x32, 40x48, 36x20 (h x w), ...: none is the model's size.
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    pixels = np.stack([decode_and_resize(tf.constant(data), (48, 32)).numpy() for data in images])
    assert pixels.shape == (len(images), 48, 32, 3)
    expected = model(pixels)
    for name in VALUES:
        np.testing.assert_allclose(
            outputs[f"{name}_scores"].numpy(), keras.ops.convert_to_numpy(expected[name]),
            rtol=0, atol=1e-5,
        )
    by_pixels = loaded.signatures["predict_images"]
    np.testing.assert_allclose(
        by_pixels(images=pixels)["embedding"].numpy(), outputs["embedding"].numpy(), atol=1e-5
    )
    decoded = decode_image(tf.constant(images[1])).numpy().astype(np.float32)[np.newaxis]
    np.testing.assert_allclose(
        by_pixels(images=decoded)["embedding"].numpy(), outputs["embedding"].numpy()[1:2],
        atol=1e-5,
    )
    requests = read_warmup_requests(exported / WARMUP_PATH)
    servable = Servable(
        "kattr", 1, exported, loaded.signatures, read_signature_defs(exported), loaded
    )
    assert servable.warmup(requests) == len(requests)


def test_flip_average_export_serves_the_mean_of_the_image_and_its_mirror_image(tmp_path, images):
    config = make_config(tmp_path, flip_average=True)
    model = small_model(config)
    loaded = tf.saved_model.load(str(export_model(model, config, None, tmp_path)))
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    pixels = np.stack([decode_and_resize(tf.constant(data), SIZE).numpy() for data in images])
    plain, mirrored = model(pixels), model(pixels[:, :, ::-1])
    for name in VALUES:
        expected = (keras.ops.convert_to_numpy(plain[name]) + mirrored[name].numpy()) / 2
        np.testing.assert_allclose(outputs[f"{name}_scores"].numpy(), expected, atol=1e-5)
    # The stand-in model is not mirror-symmetric: the served scores are not the plain ones.
    assert not np.allclose(outputs["colour_scores"].numpy(), plain["colour"], atol=1e-5)
    metadata = json.loads((tmp_path / "kattr" / "1" / METADATA_PATH).read_text())
    assert metadata["config"]["model"]["flip_average"] is True


def test_zoom_average_export_serves_the_mean_over_the_zoomed_views(tmp_path, images):
    config = make_config(tmp_path, zoom_average=[0.9])
    model = small_model(config)
    loaded = tf.saved_model.load(str(export_model(model, config, None, tmp_path)))
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    pixels = np.stack([decode_and_resize(tf.constant(data), SIZE).numpy() for data in images])
    plain, zoomed = model(pixels), model(zoom_view(pixels, 0.9))
    for name in VALUES:
        expected = (plain[name].numpy() + zoomed[name].numpy()) / 2
        np.testing.assert_allclose(outputs[f"{name}_scores"].numpy(), expected, atol=1e-5)
    assert not np.allclose(outputs["colour_scores"].numpy(), plain["colour"], atol=1e-5)
    metadata = json.loads((tmp_path / "kattr" / "1" / METADATA_PATH).read_text())
    assert metadata["config"]["model"]["zoom_average"] == [0.9]


def test_model_of_another_image_shape_is_rejected(small, tmp_path):
    model, _ = small  # 32 x 32
    with pytest.raises(ExportError, match=r"expected input \[batch, 48, 32, 3\]"):
        ServingModule(model, make_config(tmp_path, image_size=[48, 32]))


def test_mixed_precision_model_exports_float32_outputs(small, tmp_path):
    _, config = small
    model = small_model(config, dtype="mixed_float16")
    assert model.get_layer("embedding").compute_dtype == "float16"
    exported = export_model(model, config, None, tmp_path)
    signatures = read_signature_defs(exported)
    for signature in (signatures["serving_default"], signatures["predict_images"]):
        for name, info in signature.outputs.items():
            expected = {"image_ok": tf.bool}.get(
                name, tf.string if name.endswith("_labels") else tf.float32)
            assert info.dtype == expected, name
    pixels = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    outputs = tf.saved_model.load(str(exported)).signatures["predict_images"](images=pixels)
    expected = model(pixels)
    for name in VALUES:
        assert outputs[f"{name}_scores"].dtype == tf.float32
        np.testing.assert_allclose(
            outputs[f"{name}_scores"].numpy(),
            keras.ops.convert_to_numpy(expected[name]).astype(np.float32), atol=1e-6,
        )


def test_cli_reports_an_existing_version_as_an_input_error(export_dir, run_dir, base_path, capsys):
    arguments = ["--run", str(run_dir), "--base-path", str(base_path), "--version", "1"]
    assert export_main(arguments) == 2
    assert "version 1 exists" in capsys.readouterr().err
    assert (export_dir / "saved_model.pb").is_file()


def test_serving_labels_follow_the_predicted_product_types_applicability(tmp_path):
    """A hand-set model: red pictures are tops, blue ones shoes; sleeve applies to tops only."""
    config = make_config(tmp_path)
    config.taxonomy.attributes.insert(
        0, AttributeConfig("sleeve", ["short", "long"], applies_to=["top"])
    )
    image = keras.Input((SIZE, SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="embedding")(
        keras.layers.Rescaling(1 / 255)(image)
    )  # mean red, green, blue in [0, 1]
    kernels = {"product_type": [[8.0, -8.0], [0.0, 0.0], [-8.0, 8.0]]}  # red: top, blue: shoe
    outputs = {}
    for attribute in config.taxonomy.attributes:
        layer = keras.layers.Dense(len(attribute.values), activation="sigmoid", name=attribute.name)
        outputs[attribute.name] = layer(pooled)
        count = len(attribute.values)
        kernel = np.array(kernels.get(attribute.name, np.zeros((3, count))), np.float32)
        layer.set_weights([kernel, np.full(count, 0.0 if attribute.name in kernels else 4.0)])
    module = ServingModule(keras.Model(image, outputs), config)
    pixels = np.zeros((2, SIZE, SIZE, 3), np.float32)
    pixels[0, ..., 0] = pixels[1, ..., 2] = 255.0  # a red picture, then a blue one
    served = {name: value.numpy() for name, value in module.serve_images(pixels).items()}
    assert served["product_type_labels"].astype(str).tolist() == [["top", ""], ["", "shoe"]]
    assert served["sleeve_labels"].astype(str).tolist() == [["short", ""], ["", ""]]
    assert served["colour_labels"].astype(str)[:, 0].tolist() == ["red", "red"]  # applies to all
    np.testing.assert_allclose(served["sleeve_scores"][1], served["sleeve_scores"][0])
