"""`PredictClient` and `kattr-predict` over REST, gRPC and in-process, against real servers."""

from __future__ import annotations

import csv
import json

import grpc
import numpy as np
import pytest
from serving_support import expected_labels, expected_scores, free_port, image_bytes

from kattr.cli import predict as predict_cli
from kattr.client import (
    PredictClient,
    collect_images,
    decode_outputs,
    format_predictions,
    read_value_names,
)
from kattr.server import ServingError

COLOURS = [(255, 0, 0), (0, 200, 0), (20, 40, 60), (250, 240, 200)]
VALUE_NAMES = {"colour": ["red", "green", "blue"], "occasion": ["casual", "party"]}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """photos/<n>.png|jpg solid colours, photos/sub/... , a corrupt file and a manifest."""
    root = tmp_path_factory.mktemp("client")
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    for index, colour in enumerate(COLOURS[:3]):
        (photos / f"{index}.png").write_bytes(image_bytes(colour))
    (photos / "sub" / "3.png").write_bytes(image_bytes(COLOURS[3]))
    (photos / "notes.txt").write_text("not an image, not collected")
    (root / "corrupt.jpg").write_bytes(b"this is not a JPEG")
    (root / "manifest.csv").write_text("image,colour\nphotos/1.png,green\ncorrupt.jpg,\n")
    return root


def assert_record_matches(record: dict, colour) -> None:
    for attribute, scores in expected_scores(colour).items():
        assert record[attribute]["labels"] == expected_labels(colour)[attribute]
        named = record[attribute]["scores"]
        assert list(named) == VALUE_NAMES[attribute]
        np.testing.assert_allclose(list(named.values()), scores, atol=1e-4)


def clients(server, base_path, **arguments):
    return {
        "rest": PredictClient.from_rest(server.rest_url, server.model_name, **arguments),
        "grpc": PredictClient.from_grpc(server.grpc_target, server.model_name, **arguments),
        "in-process": PredictClient.from_model_dir(base_path, **arguments),
    }


def test_every_protocol_decodes_to_the_same_records(model_server, serving_base_path):
    images = [image_bytes(colour) for colour in COLOURS]
    value_names = read_value_names(serving_base_path)
    assert value_names == VALUE_NAMES
    results = {}
    protocols = clients(model_server, serving_base_path, value_names=value_names)
    for protocol, client in protocols.items():
        with client:
            results[protocol] = client.predict(images)
    assert results["rest"] == results["grpc"] == results["in-process"]
    for record, colour in zip(results["grpc"], COLOURS, strict=True):
        assert_record_matches(record, colour)


def test_without_value_names_scores_are_listed_in_model_order(model_server):
    with PredictClient.from_grpc(model_server.grpc_target, "standin") as client:
        [record] = client.predict([image_bytes((255, 0, 0))])
    assert record["colour"] == {"labels": ["red"], "scores": [1.0, 0.0, 0.0]}


def test_model_dir_reads_value_names_from_kattr_json(serving_base_path):
    with PredictClient.from_model_dir(serving_base_path / "1") as client:
        assert client.value_names == VALUE_NAMES


def test_predict_files_reports_bad_images_and_keeps_the_rest(model_server, image_folder):
    paths = [
        image_folder / "photos" / "0.png",
        image_folder / "corrupt.jpg",
        image_folder / "absent.png",
        image_folder / "photos" / "1.png",
    ]
    with PredictClient.from_rest(
        model_server.rest_url, "standin", value_names=VALUE_NAMES
    ) as client:
        records = list(client.predict_files(paths, batch_size=4))
    assert [record["image"] for record in records] == [
        str(paths[2]), str(paths[0]), str(paths[1]), str(paths[3])
    ]
    assert "cannot read image" in records[0]["error"]
    assert_record_matches(records[1]["attributes"], COLOURS[0])
    assert "Unknown image file format" in records[2]["error"]
    assert_record_matches(records[3]["attributes"], COLOURS[1])


class FlakyTransport:
    """Fails with the given codes, then answers."""

    def __init__(self, codes):
        self.codes = list(codes)
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        if self.codes:
            raise ServingError(self.codes.pop(0), "flaky")
        return {
            "colour_scores": np.array([[0.9, 0.2, 0.1]], np.float32),
            "colour_labels": np.array([[b"red", b"", b""]], dtype=object),
        }

    def close(self):
        pass


class DyingTransport:
    """Answers `batches` requests, then fails as a server that went away; records how many
    output rows were on disk when each request came in."""

    def __init__(self, batches, output=None):
        self.batches = batches
        self.output = output
        self.rows_on_disk = []

    def predict(self, images):
        if self.output is not None:
            text = self.output.read_text() if self.output.exists() else ""
            self.rows_on_disk.append(len(text.splitlines()))
        if len(self.rows_on_disk) > self.batches or (self.output is None and not self.batches):
            raise ServingError(grpc.StatusCode.UNAVAILABLE, "connection refused")
        if self.output is None:
            self.batches -= 1
        count = len(images)
        return {
            "colour_scores": np.tile(np.array([[0.9, 0.2, 0.1]], np.float32), (count, 1)),
            "colour_labels": np.array([[b"red", b"", b""]] * count, dtype=object),
        }

    def close(self):
        pass


@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
def test_cli_streams_rows_and_a_dying_server_leaves_the_finished_ones(
    image_folder, tmp_path, monkeypatch, capsys, output_format
):
    output = tmp_path / f"predictions.{output_format}"
    transport = DyingTransport(batches=2, output=output)
    client = PredictClient(transport, VALUE_NAMES, retries=0)
    monkeypatch.setattr(predict_cli, "client_from_args", lambda args: client)
    images = [str(image_folder / "photos" / f"{i}.png") for i in range(3)] * 2  # 6 images
    status = predict_cli.main(["--rest", "http://unused", "--model-name", "standin",
                               "--batch-size", "2", *images, "-o", str(output)])
    assert status == 1
    header = output_format == "csv"
    # Each batch was on disk before the next request: rows are written as they arrive.
    assert transport.rows_on_disk == [0, 2 + header, 4 + header]
    lines = output.read_text().splitlines()
    assert len(lines) == 4 + header
    if header:
        rows = list(csv.DictReader(lines))
        assert [row["colour"] for row in rows] == ["red"] * 4
    else:
        assert [json.loads(line)["image"] for line in lines] == images[:4]
    error = capsys.readouterr().err
    assert "connection refused" in error
    assert f"4 of 6 images written to {output}; 2 not written" in error


def test_predict_file_batches_yields_each_batch_before_asking_for_the_next(image_folder):
    client = PredictClient(DyingTransport(batches=1), VALUE_NAMES, retries=0)
    paths = [image_folder / "photos" / f"{i}.png" for i in range(3)]
    batches = client.predict_file_batches(paths, batch_size=2)
    first = next(batches)
    assert [record["image"] for record in first] == [str(p) for p in paths[:2]]
    with pytest.raises(ServingError, match="connection refused"):
        next(batches)


def test_unavailable_is_retried_with_backoff():
    transport = FlakyTransport([grpc.StatusCode.UNAVAILABLE] * 2)
    client = PredictClient(transport, VALUE_NAMES, retries=2, backoff_seconds=0.001)
    [record] = client.predict([b"image"])
    assert transport.calls == 3
    assert record["colour"]["scores"] == {"red": 0.9, "green": 0.2, "blue": 0.1}


@pytest.mark.parametrize(
    ("codes", "calls"),
    [([grpc.StatusCode.UNAVAILABLE] * 3, 2), ([grpc.StatusCode.INVALID_ARGUMENT], 1)],
)
def test_other_errors_and_exhausted_retries_are_raised(codes, calls):
    transport = FlakyTransport(codes)
    client = PredictClient(transport, retries=1, backoff_seconds=0.001)
    with pytest.raises(ServingError) as raised:
        client.predict([b"image"])
    assert raised.value.code == codes[0]
    assert transport.calls == calls


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_server_that_is_not_there_is_unavailable(protocol):
    port = free_port()
    factory = PredictClient.from_rest if protocol == "rest" else PredictClient.from_grpc
    target = f"http://127.0.0.1:{port}" if protocol == "rest" else f"127.0.0.1:{port}"
    client = factory(target, "standin", timeout=5, retries=1, backoff_seconds=0.01)
    with client, pytest.raises(ServingError) as raised:
        client.predict([image_bytes((1, 2, 3))])
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_decode_outputs_checks_value_names_against_scores():
    outputs = {"colour_scores": np.zeros((1, 3), np.float32)}
    with pytest.raises(ValueError, match="'colour': 2 value names for 3 scores"):
        decode_outputs(outputs, {"colour": ["red", "green"]})
    assert decode_outputs(outputs) == [{"colour": {"labels": [], "scores": [0.0, 0.0, 0.0]}}]


def test_collect_images_from_folders_files_and_manifests(image_folder):
    photos = image_folder / "photos"
    sources = [photos, image_folder / "corrupt.jpg", image_folder / "manifest.csv"]
    collected = collect_images(sources)
    assert collected == [
        photos / "0.png", photos / "1.png", photos / "2.png", photos / "sub" / "3.png",
        image_folder / "corrupt.jpg",
        image_folder / "photos" / "1.png", image_folder / "corrupt.jpg",
    ]
    rooted = collect_images([image_folder / "manifest.csv"], image_root="/data")
    assert [str(path) for path in rooted] == ["/data/photos/1.png", "/data/corrupt.jpg"]


def test_collect_images_names_what_is_wrong(image_folder):
    with pytest.raises(ValueError, match="no 'path' column"):
        collect_images([image_folder / "manifest.csv"], image_column="path")
    with pytest.raises(ValueError, match="absent: no such image, folder or manifest"):
        collect_images([image_folder / "absent"])


def test_cli_writes_csv_over_rest(model_server, serving_base_path, image_folder, tmp_path):
    output = tmp_path / "predictions.csv"
    status = predict_cli.main([
        "--rest", model_server.rest_url, "--model-name", "standin",
        "--values-from", str(serving_base_path), "--batch-size", "2",
        str(image_folder / "photos"), "-o", str(output),
    ])
    assert status == 0
    rows = list(csv.DictReader(output.open()))
    assert [row["image"] for row in rows][:1] == [str(image_folder / "photos" / "0.png")]
    assert len(rows) == 4
    assert rows[0]["colour"] == "red"
    assert rows[0]["occasion"] == "party"
    assert float(rows[0]["colour:red"]) == pytest.approx(1.0, abs=1e-4)
    assert rows[3]["occasion"] == "casual"
    assert all(row["error"] == "" for row in rows)


def test_cli_writes_json_lines_over_grpc_and_fails_on_bad_images(
    model_server, image_folder, tmp_path
):
    output = tmp_path / "predictions.jsonl"
    status = predict_cli.main([
        "--grpc", model_server.grpc_target, "--model-name", "standin",
        str(image_folder / "manifest.csv"), "-o", str(output),
    ])
    assert status == 1
    records = [json.loads(line) for line in output.read_text().splitlines()]
    colour = records[0]["attributes"]["colour"]
    assert colour["labels"] == ["green"]
    np.testing.assert_allclose(colour["scores"], [0.0, 200 / 255, 0.0], atol=1e-4)
    assert "Unknown image file format" in records[1]["error"]


def test_cli_in_process_prints_to_stdout(serving_base_path, image_folder, capsys):
    image = image_folder / "photos" / "2.png"
    assert predict_cli.main(["--model-dir", str(serving_base_path), str(image)]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["image"] == str(image)
    assert record["attributes"]["colour"]["labels"] == []
    assert list(record["attributes"]["colour"]["scores"]) == ["red", "green", "blue"]


def test_cli_requires_a_model_name_for_servers(image_folder, capsys):
    status = predict_cli.main(["--grpc", "127.0.0.1:1", str(image_folder / "photos")])
    assert status == 2
    assert "--model-name is required" in capsys.readouterr().err


def test_csv_without_value_names_numbers_the_score_columns():
    records = [{"image": "a.png", "attributes": {"colour": {"labels": [], "scores": [0.5, 0.25]}}},
               {"image": "b.png", "error": "not an image"}]
    rows = list(csv.DictReader(format_predictions(records, "csv").splitlines()))
    assert rows[0] == {"image": "a.png", "error": "", "colour": "", "colour:0": "0.5",
                       "colour:1": "0.25"}
    assert rows[1]["error"] == "not an image"
