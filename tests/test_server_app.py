"""The `kattr-serve` command and `serve()`: start-up, binding, shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from kattr.cli import serve as serve_cli
from kattr.server import ServerOptions, serve


def test_serve_binds_loopback_by_default_and_stops_cleanly(serving_base_path):
    handle = serve(serving_base_path, ServerOptions(rest_port=0, grpc_port=0))
    try:
        assert handle.model_name == "standin"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", handle.rest_url)
        assert re.fullmatch(r"127\.0\.0\.1:\d+", handle.grpc_target)
        with urllib.request.urlopen(f"{handle.rest_url}/v1/models/standin", timeout=10) as reply:
            assert reply.status == 200
    finally:
        handle.stop()
    handle.stop()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{handle.rest_url}/v1/models/standin", timeout=2)


def test_cli_refuses_a_missing_base_path(tmp_path, capsys):
    assert serve_cli.main(["--base-path", str(tmp_path / "absent"), "--rest-port", "0"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_cli_serves_until_sigterm(serving_base_path):
    command = [
        sys.executable, "-m", "kattr.cli.serve", "--base-path", str(serving_base_path),
        "--rest-port", "0", "--grpc-port", "0",
    ]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    ) as process:
        try:
            banner = process.stdout.readline()
            match = re.search(r"REST (http://127\.0\.0\.1:\d+)/v1/models/standin", banner)
            assert match, banner + process.stderr.read()
            assert "production uses TF Serving" in banner
            with urllib.request.urlopen(f"{match.group(1)}/v1/models/standin", timeout=10) as r:
                states = [s["state"] for s in json.load(r)["model_version_status"]]
            assert states == ["AVAILABLE"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        assert "serving version 1 of model standin" in process.stderr.read()
