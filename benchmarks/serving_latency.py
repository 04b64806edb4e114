"""Serving latency and throughput of an exported kattr model, path by path, in one run.

Measures, on the same images: in-process Keras (when a `.keras` model is given), the SavedModel
signature in-process, kattr-serve over REST and over gRPC (the server in its own process, as in
deployment). For each: batch-1 latency (p50, p99) and batch-32 throughput, with ratios to the
baseline (in-process Keras, else the SavedModel signature). Then a short load test: 8 concurrent
clients (half REST, half gRPC), a few hundred requests, bounded in time; it reports errors
(must be 0) and the server's peak resident memory.

Typical usage:
    python benchmarks/serving_latency.py exports/shirts --keras-model runs/shirts/best.keras \
        --output runs/shirts/serving_latency.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from kattr.client import PredictClient, resolve_version_dir
from kattr.client.model_files import METADATA_PATH, image_shape_from_metadata
from kattr.client.transports import InProcessTransport

BATCH_SIZE = 32
LOAD_CLIENTS = 8

Predict = Callable[[Sequence[bytes]], object]


def synthetic_images(count: int, shape: tuple[int, int], seed: int = 0) -> list[bytes]:
    """JPEG images of smooth random colour fields of `shape` (height, width) pixels."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        corners = rng.uniform(0, 255, (4, 3))
        y = np.linspace(0.0, 1.0, shape[0])[:, None, None]
        x = np.linspace(0.0, 1.0, shape[1])[None, :, None]
        pixels = (corners[0] * (1 - y) * (1 - x) + corners[1] * (1 - y) * x
                  + corners[2] * y * (1 - x) + corners[3] * y * x)
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def folder_images(folder: Path, count: int) -> list[bytes]:
    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)[:count]
    if not paths:
        raise ValueError(f"--images {folder}: no JPEG/PNG/BMP/GIF files")
    return [paths[i % len(paths)].read_bytes() for i in range(count)]


def keras_predictor(model_path: Path, image_shape: tuple[int, int]) -> Predict:
    """kattr.images decoding (compiled, as in the export) then `predict_on_batch`, in-process."""
    import keras
    import tensorflow as tf

    import kattr.layers  # noqa: F401 - registers kattr's layers for deserialisation
    from kattr.images import decode_and_resize

    model = keras.saving.load_model(model_path, compile=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def decode(images):
        return tf.map_fn(
            lambda image: decode_and_resize(image, image_shape),
            images,
            fn_output_signature=tf.TensorSpec([*image_shape, 3], tf.float32),
        )

    def predict(images: Sequence[bytes]):
        return model.predict_on_batch(decode(tf.constant(list(images))))

    return predict


def measure(predict: Predict, images: list[bytes], requests: int, batches: int) -> dict:
    """Batch-1 latency percentiles (ms) and batch-32 throughput (images/s)."""
    for image in images[:3]:
        predict([image])
    predict(images[:BATCH_SIZE])
    latencies = []
    for index in range(requests):
        started = time.perf_counter()
        predict([images[index % len(images)]])
        latencies.append((time.perf_counter() - started) * 1000.0)
    started = time.perf_counter()
    for _ in range(batches):
        predict(images[:BATCH_SIZE])
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "batch32_images_per_s": batches * BATCH_SIZE / elapsed,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """`kattr-serve` in a child process on free loopback ports."""

    def __init__(self, base_path: Path):
        self.model_name = base_path.name
        self.rest_port, self.grpc_port = _free_port(), _free_port()
        command = [
            sys.executable, "-m", "kattr.cli.serve", "--base-path", str(base_path),
            "--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port),
            "--workers", str(LOAD_CLIENTS),
        ]
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment
        )
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"

    def wait_until_ready(self, timeout: float = 300.0) -> None:
        url = f"{self.rest_url}/v1/models/{self.model_name}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kattr-serve exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if b"AVAILABLE" in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"kattr-serve did not serve {url} within {timeout} s")

    def peak_memory_mb(self) -> float | None:
        """Peak resident memory (VmHWM) of the server process; None where /proc is missing."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def load_test(server: ServerProcess, images: list[bytes], requests: int, seconds: float) -> dict:
    """`LOAD_CLIENTS` concurrent clients (half REST, half gRPC) sending batch-1 requests."""
    counter = iter(range(requests))
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    errors: list[str] = []
    done = [0]

    def client_loop(index: int) -> None:
        if index % 2 == 0:
            client = PredictClient.from_rest(server.rest_url, server.model_name, retries=0)
        else:
            client = PredictClient.from_grpc(server.grpc_target, server.model_name, retries=0)
        with client:
            while time.monotonic() < deadline:
                with lock:
                    number = next(counter, None)
                if number is None:
                    return
                try:
                    client.predict_raw([images[number % len(images)]])
                    with lock:
                        done[0] += 1
                except Exception as error:  # every failure counts, whatever its kind
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")

    started = time.perf_counter()
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        list(pool.map(client_loop, range(LOAD_CLIENTS)))
    elapsed = time.perf_counter() - started
    return {
        "clients": LOAD_CLIENTS,
        "requests_done": done[0],
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": elapsed,
        "requests_per_s": done[0] / elapsed,
        "server_peak_memory_mb": server.peak_memory_mb(),
    }


def find_keras_model(path: Path | None) -> Path | None:
    """A `.keras` file, or the one in a run directory (`best.keras` preferred)."""
    if path is None or path.is_file():
        return path
    candidates = sorted(path.glob("*.keras"))
    preferred = [c for c in candidates if c.name == "best.keras"]
    if not (preferred or candidates):
        raise ValueError(f"--keras-model {path}: no .keras file")
    return (preferred or candidates)[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export base path <dir>/<name> or a version dir")
    parser.add_argument("--keras-model", type=Path, help=".keras file or a run directory")
    parser.add_argument("--images", type=Path, help="folder of sample images (default: synthetic)")
    parser.add_argument("--requests", type=int, default=100, help="batch-1 requests per path")
    parser.add_argument("--batches", type=int, default=5, help="batch-32 requests per path")
    parser.add_argument("--load-requests", type=int, default=400, help="load test requests")
    parser.add_argument("--load-seconds", type=float, default=60.0, help="load test time limit")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    version_dir = resolve_version_dir(args.export)
    base_path = version_dir.parent if version_dir == args.export else args.export
    metadata_file = version_dir / METADATA_PATH
    metadata = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
    image_shape = image_shape_from_metadata(metadata, str(metadata_file)) or (224, 224)
    images = (folder_images(args.images, BATCH_SIZE) if args.images
              else synthetic_images(BATCH_SIZE, image_shape))

    paths: dict[str, dict] = {}
    keras_model = find_keras_model(args.keras_model)
    if keras_model is not None:
        paths["keras"] = measure(keras_predictor(keras_model, image_shape), images,
                                 args.requests, args.batches)
    paths["saved_model"] = measure(InProcessTransport(version_dir).predict, images,
                                   args.requests, args.batches)
    server = ServerProcess(base_path)
    try:
        server.wait_until_ready()
        for protocol, factory in (("kattr_serve_rest", PredictClient.from_rest),
                                  ("kattr_serve_grpc", PredictClient.from_grpc)):
            target = server.rest_url if protocol.endswith("rest") else server.grpc_target
            with factory(target, server.model_name) as client:
                paths[protocol] = measure(client.predict_raw, images, args.requests, args.batches)
        load = load_test(server, images, args.load_requests, args.load_seconds)
    finally:
        server.stop()

    baseline = "keras" if "keras" in paths else "saved_model"
    for result in paths.values():
        result["p50_ratio"] = result["p50_ms"] / paths[baseline]["p50_ms"]
        result["throughput_ratio"] = (
            result["batch32_images_per_s"] / paths[baseline]["batch32_images_per_s"]
        )
    results = {"export": str(version_dir), "image_size": list(image_shape), "baseline": baseline,
               "paths": paths, "load_test": load}

    print(f"{'path':<18}{'p50 ms':>9}{'p99 ms':>9}{'img/s@32':>10}{'p50 x':>8}{'thr x':>8}")
    for name, result in paths.items():
        print(f"{name:<18}{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}"
              f"{result['batch32_images_per_s']:>10.1f}{result['p50_ratio']:>8.2f}"
              f"{result['throughput_ratio']:>8.2f}")
    print(f"ratios relative to {baseline}")
    memory = load["server_peak_memory_mb"]
    print(f"load test: {load['requests_done']} requests by {load['clients']} clients in "
          f"{load['seconds']:.1f} s, {load['errors']} errors, server peak memory "
          + (f"{memory:.0f} MB" if memory is not None else "unknown"))
    if args.output:
        temporary = args.output.with_name(f".{args.output.name}.tmp")
        temporary.write_text(json.dumps(results, indent=2))
        os.replace(temporary, args.output)
    return 1 if load["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
