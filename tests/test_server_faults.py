"""Faults and overload in kattr-serve: load retries, the concurrency limit, draining stops."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import grpc
import pytest
from serving_support import publish_version
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from kattr.cli import serve as serve_cli
from kattr.server import ServerOptions, serve
from kattr.server.grpc_service import ModelService
from kattr.server.model_store import ModelStore
from kattr.server.rest import RestApi
from kattr.server.servable import Servable


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def get(url: str | urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post(url: str, body: bytes) -> tuple[int, dict]:
    return get(urllib.request.Request(url, data=body, method="POST"))


def states(url: str) -> dict[str, str]:
    """Version -> state from TF Serving's model status API."""
    status, document = get(url)
    assert status == 200, document
    return {entry["version"]: entry["state"] for entry in document["model_version_status"]}


# --- Load retries.


def test_a_half_copied_version_is_served_once_a_retry_finds_it_complete(tmp_path, caplog):
    base = tmp_path / "standin"
    publish_version(base, 1)
    staged = publish_version(tmp_path / "staging", 2, embedding_scale=2.0)
    data = next((staged / "variables").glob("variables.data-*"))
    complete = data.read_bytes()
    data.write_bytes(complete[: len(complete) // 2])  # this file is still being copied
    options = ServerOptions(
        rest_port=0, grpc_port=None, poll_interval_seconds=0.05,
        max_num_load_retries=1000, load_retry_interval_seconds=0.1,
    )
    with serve(base, options) as handle:
        url = f"{handle.rest_url}/v1/models/standin"
        os.replace(staged, base / "2")
        wait_until(lambda: "loading version 2 of model standin failed" in caplog.text)
        assert states(url) == {"2": "LOADING", "1": "AVAILABLE"}  # TF Serving's state on retry
        # The copy completes without touching the version directory or saved_model.pb.
        (base / "2" / "variables" / data.name).write_bytes(complete)
        handle.store.wait_for_version(2, timeout=30)
        assert states(url) == {"2": "AVAILABLE", "1": "END"}


@pytest.fixture
def failing_loads(monkeypatch):
    """Makes loads of version 2 fail with a transient error; yields the list of attempts."""
    attempts = []
    load = Servable.load

    def flaky_load(name, version, path):
        if version == 2:
            attempts.append(time.monotonic())
            raise OSError("Input/output error: variables/variables.index")
        return load(name, version, path)

    monkeypatch.setattr(Servable, "load", staticmethod(flaky_load))
    return attempts


@pytest.fixture
def store_on_version_1(serving_base_path, tmp_path):
    """A `ModelStore` factory serving a copy of the stand-in as version 1 of `<tmp>/standin`."""

    def make(**options) -> ModelStore:
        base = tmp_path / "standin"
        shutil.copytree(serving_base_path / "1", base / "1")
        store = ModelStore(base, **options)
        store.poll()
        assert store.current_version == 1
        shutil.copytree(base / "1", base / "2")  # its loads fail (`failing_loads`)
        return store

    return make


def test_load_retries_are_bounded_then_the_failure_is_reported(
    store_on_version_1, failing_loads, caplog
):
    store = store_on_version_1(max_num_load_retries=2, load_retry_interval_seconds=0)
    for attempt in (1, 2):
        store.poll()
        assert len(failing_loads) == attempt
        assert store.statuses("standin", 2)[0].state == "LOADING"
    store.poll()  # the second and last retry
    store.poll()  # given up: no more attempts on the same files
    assert len(failing_loads) == 3
    assert store.current_version == 1
    status, body = RestApi(store).handle("GET", "/v1/models/standin", b"")
    assert status == 200
    assert json.loads(body)["model_version_status"] == [
        {"version": "2", "state": "END", "status": {
            "error_code": "NOT_FOUND",
            "error_message": "Input/output error: variables/variables.index"}},
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    ]
    assert "failed 3 time(s); giving up until its files change (version 1 keeps" in caplog.text


def test_a_load_retry_waits_for_the_interval(store_on_version_1, failing_loads):
    store = store_on_version_1(max_num_load_retries=5, load_retry_interval_seconds=60)
    store.poll()
    store.poll()
    assert len(failing_loads) == 1
    assert store.statuses("standin", 2)[0].state == "LOADING"


# --- Requests held inside the server, for the concurrency limit and draining stops.


class Gate:
    """Requests marked "hold" wait inside the server until `release` is set.

    REST: a path ending in ``?hold``; gRPC: GetModelStatus with signature_name "hold".
    """

    def __init__(self):
        self.entered = threading.Semaphore(0)  # released once per held request
        self.release = threading.Event()

    def hold(self) -> None:
        self.entered.release()
        assert self.release.wait(60)


@pytest.fixture
def gate(monkeypatch):
    gate = Gate()
    rest_handle = RestApi.handle
    get_model_status = ModelService.GetModelStatus

    def handle(api, method, path, body):
        if path.endswith("?hold"):
            gate.hold()
        return rest_handle(api, method, path, body)

    def held_get_model_status(service, request, context):
        if request.model_spec.signature_name == "hold":
            gate.hold()
        return get_model_status(service, request, context)

    monkeypatch.setattr(RestApi, "handle", handle)
    monkeypatch.setattr(ModelService, "GetModelStatus", held_get_model_status)
    yield gate
    gate.release.set()


def status_request(signature_name: str = "") -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "standin"
    request.model_spec.signature_name = signature_name
    return request


def test_rest_answers_503_beyond_max_concurrent_requests(serving_base_path, gate):
    options = ServerOptions(rest_port=0, grpc_port=None, max_concurrent_requests=1)
    with serve(serving_base_path, options) as handle, ThreadPoolExecutor(1) as pool:
        url = f"{handle.rest_url}/v1/models/standin"
        held = pool.submit(get, url + "?hold")
        assert gate.entered.acquire(timeout=30)
        status, document = get(url)
        assert status == 503
        assert "--max-concurrent-requests" in document["error"]
        # A refused predict whose body is still being sent gets the answer, not a reset.
        big = json.dumps({"instances": [{"b64": "A" * 4_000_000}]}).encode()
        assert post(url + ":predict", big)[0] == 503
        gate.release.set()
        assert held.result(30)[0] == 200
        wait_until(lambda: handle._rest_server.open_connections == 0)
        assert get(url)[0] == 200


def test_grpc_answers_resource_exhausted_beyond_max_concurrent_requests(serving_base_path, gate):
    options = ServerOptions(rest_port=None, grpc_port=0, max_concurrent_requests=1)
    with serve(serving_base_path, options) as handle, grpc.insecure_channel(
        handle.grpc_target
    ) as channel, ThreadPoolExecutor(1) as pool:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        held = pool.submit(stub.GetModelStatus, status_request("hold"), timeout=30)
        assert gate.entered.acquire(timeout=30)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetModelStatus(status_request(), timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        gate.release.set()
        assert held.result(30).model_version_status[0].version == 1

        def answers() -> bool:
            try:
                return bool(stub.GetModelStatus(status_request(), timeout=30))
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # not released yet
                return False

        wait_until(answers)


def test_stop_drains_accepted_requests_and_refuses_new_ones(serving_base_path, gate):
    options = ServerOptions(rest_port=0, grpc_port=0, workers=1, drain_seconds=60)
    handle = serve(serving_base_path, options)
    url = f"{handle.rest_url}/v1/models/standin"
    with grpc.insecure_channel(handle.grpc_target) as channel, ThreadPoolExecutor(4) as pool:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        held_rest = pool.submit(get, url + "?hold")
        held_grpc = pool.submit(stub.GetModelStatus, status_request("hold"), timeout=60)
        assert gate.entered.acquire(timeout=30) and gate.entered.acquire(timeout=30)
        queued = pool.submit(get, url)  # accepted, waiting for the only REST worker
        wait_until(lambda: handle._rest_server.open_connections == 2)
        stopping = pool.submit(handle.stop)
        wait_until(lambda: handle._rest_server.socket.fileno() == -1)
        with pytest.raises(urllib.error.URLError, match="Connection refused"):
            urllib.request.urlopen(url, timeout=10)
        with pytest.raises(FutureTimeout):
            stopping.result(timeout=1.5)  # waits for the accepted requests
        gate.release.set()
        assert held_rest.result(30) == (200, {"model_version_status": [{
            "version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})
        assert queued.result(30)[0] == 200
        assert held_grpc.result(30).model_version_status[0].version == 1
        stopping.result(30)


def test_stop_closes_idle_kept_alive_connections_at_once(serving_base_path):
    handle = serve(serving_base_path, ServerOptions(rest_port=0, grpc_port=None))
    connection = http.client.HTTPConnection("127.0.0.1", handle.rest_port, timeout=30)
    connection.request("GET", "/v1/models/standin")
    response = connection.getresponse()
    assert (response.status, response.getheader("Connection")) == (200, None)  # kept alive
    response.read()
    started = time.monotonic()
    handle.stop()
    assert time.monotonic() - started < 2.5  # not the 5 s a kept-alive connection may idle
    connection.sock.settimeout(0.5)
    assert connection.sock.recv(1) == b""  # already closed by the server
    connection.close()


def test_stop_cuts_off_requests_still_running_after_the_drain_time(serving_base_path, gate):
    options = ServerOptions(rest_port=0, grpc_port=None, drain_seconds=1.5)
    handle = serve(serving_base_path, options)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(get, f"{handle.rest_url}/v1/models/standin?hold")
        assert gate.entered.acquire(timeout=30)
        started = time.monotonic()
        handle.stop()
        assert 1.5 <= time.monotonic() - started < 10
        with pytest.raises(ConnectionError):
            held.result(30)  # closed without an answer


def test_cli_options_have_tf_serving_defaults_and_flags():
    parser = serve_cli.build_parser()
    defaults = serve_cli.options_from_args(parser.parse_args(["--base-path", "m"]))
    assert (
        defaults.max_concurrent_requests, defaults.max_num_load_retries,
        defaults.load_retry_interval_seconds, defaults.drain_seconds,
    ) == (64, 5, 60.0, 10.0)
    options = serve_cli.options_from_args(parser.parse_args([
        "--base-path", "m", "--max-concurrent-requests", "4", "--max-num-load-retries", "2",
        "--load-retry-interval-seconds", "0.5", "--drain-seconds", "3",
    ]))
    assert (
        options.max_concurrent_requests, options.max_num_load_retries,
        options.load_retry_interval_seconds, options.drain_seconds,
    ) == (4, 2, 0.5, 3.0)
