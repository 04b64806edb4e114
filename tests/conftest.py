"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from kattr.synth import SyntheticCatalog, generate_catalog


@pytest.fixture(scope="session")
def synthetic_catalog(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCatalog:
    """A small clean synthetic catalog (120 images of 64 px, 10% blank cells, no corrupt files).

    Shared by the whole session: tests must not modify its files.
    """
    return generate_catalog(
        tmp_path_factory.mktemp("synthetic") / "catalog", count=120, seed=0, image_size=64,
        missing_rate=0.1,
    )


# --- Serving: the exported-model stand-in and the servers under test (tests/serving_support.py).

SERVER_KINDS = ("kattr-serve", "tensorflow_model_server")


@pytest.fixture(scope="session")
def serving_base_path(tmp_path_factory: pytest.TempPathFactory):
    """`<tmp>/standin/1`: the stand-in export, shared by the session; tests must not modify it."""
    from serving_support import publish_version

    base_path = tmp_path_factory.mktemp("serving") / "standin"
    publish_version(base_path, 1)
    return base_path


@pytest.fixture(scope="session", params=SERVER_KINDS)
def model_server(request: pytest.FixtureRequest, serving_base_path):
    """A server of the stand-in: kattr-serve, or a real tensorflow_model_server when installed."""
    from serving_support import start_server

    with start_server(request.param, serving_base_path) as server:
        yield server


# --- A model trained once per session on a noisy synthetic catalog (learning and catalog apps).

# The synthetic config's own recipe (20 epochs from scratch, lr 1e-3 decayed by 0.9 per epoch;
# measurements in kattr.synth), on 1,200 images of 48 px: twice the images of 64 px for the same
# CPU time, which learned every attribute better than 600 images of 64 px.
TRAINED_IMAGES = 1200
TRAINED_IMAGE_SIZE = 48
TRAINED_NOISE_RATE = 0.1  # share of labelled cells given a wrong value (truth.csv flags them)
# Deterministic: the same weights on every run of the suite on one machine, so a learning test
# cannot pass or fail by the order in which parallel decoding happened to hand over the rows.
TRAINED_OVERRIDES = ["train.early_stopping_patience=null", "train.deterministic=true"]


@pytest.fixture(scope="session")
def trained_synthetic_run(tmp_path_factory: pytest.TempPathFactory):
    """`(catalog, run_dir)`: 1,200 noisy synthetic images of 48 px and a run trained on them.

    Trained once per session, deterministically (about 4 minutes on 2 idle cores); tests must
    not modify either folder.
    """
    from kattr.config import load_config
    from kattr.training import train

    root = tmp_path_factory.mktemp("trained")
    catalog = generate_catalog(
        root / "catalog", count=TRAINED_IMAGES, seed=0, image_size=TRAINED_IMAGE_SIZE,
        missing_rate=0.1,
        noise_rate=TRAINED_NOISE_RATE,
    )
    config = load_config(catalog.config_path, TRAINED_OVERRIDES)
    result = train(config, root / "run", verbose=0)
    return catalog, result.run_dir
