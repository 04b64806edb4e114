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
