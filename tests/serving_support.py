"""Helpers for the serving tests: a tiny stand-in of the exported SavedModel and server runners.

The stand-in honours the export contract (signature `serving_default` taking `image_bytes`,
`<attr>_scores` / `<attr>_labels` / `embedding` outputs, signature `predict_images`,
`assets.extra/kattr.json` and warmup records) with outputs that are a simple function of the
mean colour, so tests can check exact values:
- `colour_scores` = mean (R, G, B) / 255; exclusive: the argmax is the label if >= 0.5;
- `occasion_scores` = (brightness, 1 - brightness), brightness = mean of `colour_scores`;
  multi-label: every value >= 0.5;
- `embedding` = `colour_scores` * `embedding_scale` (differs between versions in tests).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from kattr.images import decode_and_resize
from kattr.server import ServerOptions, serve
from kattr.tf_serving_requests import WARMUP_PATH, predict_request, write_warmup_requests

KATTR_SERVE = "kattr-serve"
IMAGE_SIZE = 32
THRESHOLD = 0.5
VALUES = {"colour": ["red", "green", "blue"], "occasion": ["casual", "party"]}
EXCLUSIVE = {"colour": True, "occasion": False}
TF_SERVING_BINARY = "tensorflow_model_server"


def image_bytes(colour: tuple[int, int, int], size: int = 40, image_format: str = "PNG") -> bytes:
    """A solid-colour square image, encoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, image_format)
    return buffer.getvalue()


def expected_scores(colour: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The stand-in's scores for a solid-colour image."""
    mean = np.asarray(colour, dtype=np.float64) / 255.0
    brightness = mean.mean()
    return {"colour": mean, "occasion": np.array([brightness, 1.0 - brightness])}


def expected_labels(colour: tuple[int, int, int]) -> dict[str, list[str]]:
    """The stand-in's predicted labels for a solid-colour image."""
    labels = {}
    for attribute, scores in expected_scores(colour).items():
        values = VALUES[attribute]
        if EXCLUSIVE[attribute]:
            best = int(np.argmax(scores))
            labels[attribute] = [values[best]] if scores[best] >= THRESHOLD else []
        else:
            labels[attribute] = [v for v, s in zip(values, scores, strict=True) if s >= THRESHOLD]
    return labels


class StandInModel(tf.Module):
    """The exported model's interface with mean-colour outputs (see the module docstring)."""

    def __init__(self, embedding_scale: float = 1.0):
        super().__init__()
        self.embedding_scale = tf.Variable(embedding_scale, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve_bytes(self, image_bytes):
        images = tf.map_fn(
            lambda encoded: decode_and_resize(encoded, IMAGE_SIZE),
            image_bytes,
            fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32),
        )
        return self._outputs(images)

    @tf.function(input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32)])
    def serve_images(self, images):
        return self._outputs(images)

    def _outputs(self, images):
        colour = tf.reduce_mean(images, axis=[1, 2]) / 255.0
        brightness = tf.reduce_mean(colour, axis=1, keepdims=True)
        scores = {"colour": colour, "occasion": tf.concat([brightness, 1.0 - brightness], 1)}
        outputs = {"embedding": colour * self.embedding_scale}
        for attribute, attribute_scores in scores.items():
            values = tf.broadcast_to(tf.constant(VALUES[attribute]), tf.shape(attribute_scores))
            selected = attribute_scores >= THRESHOLD
            if EXCLUSIVE[attribute]:
                best = tf.one_hot(tf.argmax(attribute_scores, axis=1), len(VALUES[attribute]))
                selected = tf.logical_and(selected, best > 0)
            outputs[f"{attribute}_scores"] = attribute_scores
            outputs[f"{attribute}_labels"] = tf.where(selected, values, "")
        return outputs


def save_standin(
    export_dir: Path,
    embedding_scale: float = 1.0,
    warmup_requests: list | None = None,
) -> Path:
    """Saves the stand-in SavedModel with kattr.json and warmup records (one image by default)."""
    model = StandInModel(embedding_scale)
    signatures = {
        "serving_default": model.serve_bytes.get_concrete_function(),
        "predict_images": model.serve_images.get_concrete_function(),
    }
    tf.saved_model.save(model, str(export_dir), signatures=signatures)
    metadata = {
        "taxonomy": {
            "attributes": [
                {"name": name, "values": values, "exclusive": EXCLUSIVE[name]}
                for name, values in VALUES.items()
            ]
        },
        "thresholds": {name: THRESHOLD for name in VALUES},
        "image_size": IMAGE_SIZE,
    }
    (export_dir / "assets.extra").mkdir(exist_ok=True)
    (export_dir / "assets.extra" / "kattr.json").write_text(json.dumps(metadata))
    if warmup_requests is None:
        warmup_requests = [predict_request({"image_bytes": [image_bytes((10, 20, 30))]})]
    if warmup_requests:
        write_warmup_requests(export_dir / WARMUP_PATH, warmup_requests)
    return export_dir


def publish_version(base_path: Path, version: int, **save_arguments) -> Path:
    """Writes a version beside the base path, then renames it in: it appears complete."""
    base_path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=base_path.parent, prefix=f".{base_path.name}-"))
    save_standin(staging / "model", **save_arguments)
    target = base_path / str(version)
    os.replace(staging / "model", target)
    shutil.rmtree(staging)
    return target


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_tf_serving() -> str | None:
    """`$TF_SERVING_BIN` or `tensorflow_model_server` on PATH, if there is one."""
    configured = os.environ.get("TF_SERVING_BIN")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which(TF_SERVING_BINARY)


@dataclass
class RunningServer:
    """Where a server under test listens."""

    kind: str
    model_name: str
    rest_url: str
    grpc_target: str
    base_path: Path


class TFServingProcess:
    """A real `tensorflow_model_server` on free loopback ports, for parity tests."""

    def __init__(self, binary: str, base_path: Path, poll_seconds: int = 1):
        self.base_path = base_path
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [
                binary,
                f"--port={self.grpc_port}",
                f"--rest_api_port={self.rest_port}",
                f"--model_name={base_path.name}",
                f"--model_base_path={base_path}",
                f"--file_system_poll_wait_seconds={poll_seconds}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_until_available(self, timeout: float = 60.0) -> RunningServer:
        url = f"http://127.0.0.1:{self.rest_port}/v1/models/{self.base_path.name}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode(errors="replace"))
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    states = [s["state"] for s in json.load(response)["model_version_status"]]
                    if "AVAILABLE" in states:
                        return RunningServer(
                            TF_SERVING_BINARY, self.base_path.name,
                            f"http://127.0.0.1:{self.rest_port}",
                            f"127.0.0.1:{self.grpc_port}", self.base_path,
                        )
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"tensorflow_model_server did not serve {url} within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def require_server(kind: str) -> str | None:
    """Skips the test unless the server `kind` can run here; returns the TF Serving binary."""
    if kind == KATTR_SERVE:
        return None
    binary = find_tf_serving()
    if binary is None:
        import pytest

        pytest.skip(f"{TF_SERVING_BINARY} not found on PATH or in $TF_SERVING_BIN")
    return binary


@contextmanager
def start_server(kind: str, base_path: Path, poll_seconds: float = 1.0) -> Iterator[RunningServer]:
    """Runs `kattr-serve` (in this process) or `tensorflow_model_server` on free loopback ports.

    Skips the test when `tensorflow_model_server` is asked for and not installed.
    """
    if kind == KATTR_SERVE:
        options = ServerOptions(rest_port=0, grpc_port=0, poll_interval_seconds=poll_seconds)
        with serve(base_path, options) as handle:
            handle.store.wait_for_version(timeout=30)
            yield RunningServer(
                KATTR_SERVE, handle.model_name, handle.rest_url, handle.grpc_target, base_path
            )
        return
    binary = require_server(kind)
    process = TFServingProcess(binary, base_path, poll_seconds=max(1, round(poll_seconds)))
    try:
        yield process.wait_until_available()
    finally:
        process.stop()
