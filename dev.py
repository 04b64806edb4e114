#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11.

Typical usage:
    python3 dev.py demo   # set up .venv, install kattr, run the main job end to end
    python3 dev.py test   # set up (or reuse) .venv, run ruff and the test suite

The virtual environment is reinstalled only when setup.cfg or pyproject.toml change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".kattr-install-stamp"


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Creates .venv and installs kattr with its dev and beam extras unless up to date."""
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev,beam]"], check=True)
    STAMP.write_text(fingerprint)


def run(*command: str) -> int:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ("demo", "test", "setup"):
        print(__doc__)
        return 2
    ensure_environment()
    if argv[0] == "demo":
        return run("kattr-demo", *(argv[1:] or ["--output", "demo"]))
    if argv[0] == "test":
        ruff = run("ruff", "check", ".")
        tests = run("python", "-m", "pytest", "-q", "-rs", "--durations=10", *argv[1:])
        return tests or ruff
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
