"""Server-backed runs: one model version answers a whole run, and --values-from must match it.

Against kattr-serve over loopback with the stand-in export (tests/serving_support.py), and with
a faked gRPC stub for answers a real server would not give.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from serving_support import IMAGE_SIZE, THRESHOLD, VALUES, image_bytes, publish_version
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2

from kattr.apps import open_scorer, open_source
from kattr.apps.enrich import enrich_manifest, summary_path
from kattr.apps.scoring import Scorer
from kattr.cli import predict as predict_cli
from kattr.client import GrpcTransport, ModelVersionError, PredictClient, ServedModel
from kattr.server import ServerOptions, serve
from kattr.server.protos import metadata_json, metadata_response

COLOURS = [(250, 10, 10), (10, 200, 10), (30, 40, 220)]


def write_kattr_json(path, values=None):
    """A kattr.json for the stand-in (taxonomy with a category column, 0.5 thresholds)."""
    values = VALUES if values is None else values
    metadata = {
        "taxonomy": {
            "category_column": "category",
            "categories": ["shirt"],
            "category_output": None,
            "attributes": [
                {"name": name, "values": list(names), "exclusive": name == "colour"}
                for name, names in values.items()
            ],
        },
        "thresholds": {name: THRESHOLD for name in values},
        "image_size": IMAGE_SIZE,
    }
    path.write_text(json.dumps(metadata))
    return path


def write_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, colour in enumerate(COLOURS):
        path = folder / f"{index}.png"
        path.write_bytes(image_bytes(colour))
        paths.append(path)
    return paths


# --- (1) a run is pinned to the version served when it opened


def test_a_run_keeps_its_version_and_refuses_to_straddle_a_new_one(tmp_path):
    base_path = tmp_path / "standin"
    publish_version(base_path, 1, embedding_scale=1.0)
    kattr_json = write_kattr_json(tmp_path / "kattr.json")
    paths = write_images(tmp_path / "photos")
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "image,category,colour,occasion\n"
        + "".join(f"photos/{path.name},shirt,,\n" for path in paths)
    )
    # Polled by hand: version 2 is loaded exactly when the test says.
    options = ServerOptions(rest_port=0, grpc_port=0, poll_interval_seconds=3600)
    with serve(base_path, options) as handle:
        handle.store.wait_for_version(1, timeout=30)
        scorers = {
            "rest": open_scorer(rest=handle.rest_url, model_name="standin",
                                values_from=kattr_json),
            "grpc": open_scorer(grpc=handle.grpc_target, model_name="standin",
                                values_from=kattr_json),
        }
        for scorer in scorers.values():
            assert scorer.source["version"] == 1

        # Version 2 (negated embeddings) is published while the run is in progress.
        publish_version(base_path, 2, embedding_scale=-1.0)
        for scorer in scorers.values():
            result = scorer.score_files(paths, batch_size=2)
            assert result.source["version"] == 1
            assert not result.failures
            assert (result.embeddings > 0).all()  # version 1's embeddings
        enriched = enrich_manifest(manifest, tmp_path / "enriched.csv", scorers["rest"])
        assert enriched.model_version == 1
        summary = json.loads(summary_path(tmp_path / "enriched.csv").read_text())
        assert summary["model_version"] == 1
        assert summary["source"]["version"] == 1

        handle.store.poll()  # version 2 replaces version 1
        assert handle.store.current_version == 2
        for protocol, scorer in scorers.items():
            with pytest.raises(ModelVersionError) as raised:
                scorer.score_files(paths, batch_size=2)
            message = str(raised.value)
            assert "version 1" in message and "no longer served" in message, protocol
            assert "version 2 is served now" in message and "rerun" in message, protocol
            assert raised.value.pinned == 1 and raised.value.answered == 2
            scorer.close()
        # A source recorded with version 1 (a search index) does not reopen on version 2.
        with pytest.raises(ModelVersionError, match="version 1 .* no longer served"):
            open_source(scorers["grpc"].source)
        # A new run opens on version 2 and records it.
        with open_scorer(rest=handle.rest_url, model_name="standin",
                         values_from=kattr_json) as scorer:
            assert scorer.source["version"] == 2
            result = scorer.score_files(paths)
            assert (result.embeddings < 0).all()


# --- (2) a gRPC answer from another version than the pinned one


def tensor_info(name, dims, dtype=types_pb2.DT_FLOAT):
    info = meta_graph_pb2.TensorInfo(name=name, dtype=dtype)
    if dims is None:
        info.tensor_shape.unknown_rank = True
    for size in dims or ():
        info.tensor_shape.dim.add(size=size)
    return info


def standin_signature(widths):
    """A `serving_default` signature def with `<attr>_scores` of the given widths (None:
    unknown rank) and an embedding."""
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    signature.inputs["image_bytes"].CopyFrom(tensor_info("x:0", [-1], types_pb2.DT_STRING))
    for attribute, width in widths.items():
        dims = None if width is None else [-1, width]
        signature.outputs[f"{attribute}_scores"].CopyFrom(tensor_info(attribute, dims))
    signature.outputs["embedding"].CopyFrom(tensor_info("embedding", [-1, 3]))
    return {"serving_default": signature}


class FakeStub:
    """`PredictionService` answering from the given versions, one per Predict call."""

    def __init__(self, metadata_version, answer_versions, widths=None):
        self.metadata_version = metadata_version
        self.answer_versions = list(answer_versions)
        self.widths = {name: len(values) for name, values in VALUES.items()}
        self.widths.update(widths or {})
        self.metadata_requests = []

    def GetModelMetadata(self, request, timeout=None):
        self.metadata_requests.append(request)
        return metadata_response(
            "standin", self.metadata_version, standin_signature(self.widths)
        )

    def Predict(self, request, timeout=None):
        count = len(request.inputs["image_bytes"].string_val)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = "standin"
        response.model_spec.version.value = self.answer_versions.pop(0)
        outputs = {
            "colour_scores": np.full((count, 3), 0.9, np.float32),
            "occasion_scores": np.full((count, 2), 0.2, np.float32),
            "embedding": np.ones((count, 3), np.float32),
        }
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        self.last_request = request
        return response


def fake_grpc_scorer(stub, tmp_path, values=None):
    transport = GrpcTransport("127.0.0.1:1", "standin")  # never connected: the stub answers
    transport.stub = stub
    client = PredictClient(transport, retries=0)
    metadata = json.loads(write_kattr_json(tmp_path / "kattr.json", values).read_text())
    return Scorer.from_client(client, metadata, {"kind": "grpc", "target": "127.0.0.1:1"})


def test_a_grpc_answer_from_another_version_is_refused(tmp_path):
    stub = FakeStub(metadata_version=1, answer_versions=[1, 2])
    scorer = fake_grpc_scorer(stub, tmp_path)
    assert scorer.source["version"] == 1
    scores, _ = scorer.predict([image_bytes((1, 2, 3))])
    assert scores["colour"].shape == (1, 3)
    assert stub.last_request.model_spec.version.value == 1  # pinned after the metadata
    with pytest.raises(ModelVersionError, match="version 2 answered a request for version 1"):
        scorer.predict([image_bytes((1, 2, 3))])


def test_without_shapes_in_the_metadata_the_answers_are_checked(tmp_path):
    stub = FakeStub(metadata_version=4, answer_versions=[4], widths={"colour": None})
    scorer = fake_grpc_scorer(stub, tmp_path, {**VALUES, "colour": ["red", "green"]})
    assert scorer.source["version"] == 4
    with pytest.raises(ValueError, match=r"'colour': the answer of model 'standin' version 4 "
                                         r"has 3 values, .*kattr.json has 2"):
        scorer.predict([image_bytes((1, 2, 3))])


def test_served_model_reads_rest_metadata_with_string_versions():
    document = metadata_json("standin", 7, standin_signature({"colour": 3, "occasion": None}))
    assert document["model_spec"]["version"] == "7"
    served = ServedModel.from_metadata_json(document)
    assert served.version == 7
    assert served.score_widths() == {"colour": 3, "occasion": None}
    with pytest.raises(ValueError, match="no signature 'predict_images'"):
        served.score_widths("predict_images")


# --- (3) --values-from must describe the served model


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_values_from_must_match_the_served_model(model_server, tmp_path, protocol):
    target = model_server.rest_url if protocol == "rest" else model_server.grpc_target
    arguments = {protocol: target, "model_name": model_server.model_name}

    more_colours = write_kattr_json(
        tmp_path / "colours.json", {**VALUES, "colour": [*VALUES["colour"], "black"]}
    )
    with pytest.raises(ValueError) as raised:
        open_scorer(**arguments, values_from=more_colours)
    message = str(raised.value)
    assert "attribute 'colour'" in message
    assert "version 1 has 3 values" in message and "colours.json has 4" in message

    no_occasion = write_kattr_json(tmp_path / "no_occasion.json", {"colour": VALUES["colour"]})
    with pytest.raises(ValueError, match="attribute 'occasion': model 'standin' version 1 has "
                                         "occasion_scores \\(2 values\\), .* no such attribute"):
        open_scorer(**arguments, values_from=no_occasion)

    extra = write_kattr_json(tmp_path / "extra.json", {**VALUES, "sleeve": ["short", "long"]})
    with pytest.raises(ValueError, match="attribute 'sleeve': .*extra.json has 2 values, "
                                         "model 'standin' version 1 has no sleeve_scores"):
        open_scorer(**arguments, values_from=extra)

    matching = write_kattr_json(tmp_path / "kattr.json")
    with open_scorer(**arguments, values_from=matching) as scorer:
        assert scorer.source["version"] == 1
        scores, _ = scorer.predict([image_bytes((255, 0, 0))])
    np.testing.assert_allclose(scores["colour"], [[1.0, 0.0, 0.0]], atol=1e-4)


def test_predict_cli_refuses_value_names_of_another_model(model_server, tmp_path, capsys):
    image = tmp_path / "red.png"
    image.write_bytes(image_bytes((255, 0, 0)))
    no_occasion = write_kattr_json(tmp_path / "kattr.json", {"colour": VALUES["colour"]})
    status = predict_cli.main([
        "--grpc", model_server.grpc_target, "--model-name", model_server.model_name,
        "--values-from", str(no_occasion), str(image), "-o", str(tmp_path / "out.jsonl"),
    ])
    assert status == 2
    assert "attribute 'occasion'" in capsys.readouterr().err
