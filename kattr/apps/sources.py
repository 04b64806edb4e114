"""Opening the `Scorer` of one model source from command-line style arguments.

Example:
    >>> scorer = open_scorer(run="runs/shirts")
    >>> scorer = open_scorer(grpc="127.0.0.1:8500", model_name="shirts",
    ...                      values_from="exports/shirts")
    >>> same = open_source(scorer.source)  # as stored in a search index
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kattr.apps.scoring import Scorer
from kattr.client.model_files import read_metadata
from kattr.serving_contract import DEFAULT_SIGNATURE

__all__ = ["open_scorer", "open_source"]


def open_scorer(
    run: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    scores: str | os.PathLike | None = None,
    rest: str | None = None,
    grpc: str | None = None,
    model_name: str | None = None,
    values_from: str | os.PathLike | None = None,
    version: int | None = None,
    signature: str = DEFAULT_SIGNATURE,
    timeout: float = 30.0,
    retries: int = 3,
) -> Scorer:
    """The `Scorer` of exactly one source: `run`, `model_dir`, `scores`, `rest` or `grpc`.

    Args:
        run: a training run directory.
        model_dir: an exported SavedModel version directory or base path.
        scores: a finished `kattr-batch` folder: its stored scores answer for the rows it
            scored (`kattr.apps.stored_scores.StoredScores`).
        rest: a REST server, e.g. ``http://127.0.0.1:8501``.
        grpc: a gRPC server, e.g. ``127.0.0.1:8500``.
        model_name: the served model's name (servers only).
        values_from: the served export's `kattr.json` (or its version directory or base path):
            its taxonomy and thresholds (servers only; TF Serving does not serve them). Its
            attributes and value counts must match the served model's `<attr>_scores`
            outputs (a ValueError names each mismatch).
        version: a specific served version (servers only; default: the version served when
            the scorer opens). Either way every request goes to that one version, recorded as
            ``scorer.source["version"]``; see `Scorer.from_client`.
        signature: the signature to run (exports and servers).
        timeout: seconds per request (servers only).
        retries: retries while the server is UNAVAILABLE (servers only).

    Example:
        >>> scorer = open_scorer(grpc="127.0.0.1:8500", model_name="shirts",
        ...                      values_from="exports/shirts")
    """
    given = {name: value for name, value in (
        ("run", run), ("model_dir", model_dir), ("scores", scores), ("rest", rest), ("grpc", grpc)
    ) if value}
    if len(given) != 1:
        raise ValueError(
            "expected exactly one model source: run, model_dir, scores, rest or grpc (--run, "
            f"--model-dir, --scores, --rest, --grpc). Received: {sorted(given) or 'none'}"
        )
    if run:
        return Scorer.from_run(run)
    if scores:
        from kattr.apps.stored_scores import StoredScores

        return StoredScores.open(scores)
    if model_dir:
        return Scorer.from_model_dir(model_dir, signature_name=signature, retries=retries)
    from kattr.client import PredictClient

    if not model_name:
        raise ValueError("--model-name is required with --rest and --grpc")
    if not values_from:
        raise ValueError(
            "--values-from is required with --rest and --grpc: the served export's kattr.json "
            "(or its export directory) holds the taxonomy and thresholds"
        )
    metadata = read_metadata(values_from)
    factory = PredictClient.from_rest if rest else PredictClient.from_grpc
    client = factory(rest or grpc, model_name, signature, version, timeout, retries=retries)
    kind = "rest" if rest else "grpc"
    source = {"kind": kind, "target": rest or grpc, "model_name": model_name,
              "values_from": str(Path(values_from).resolve())}
    if version is not None:
        source["version"] = version
    return Scorer.from_client(client, metadata, source)


def open_source(source: Mapping) -> Scorer:
    """Reopens a source described by `Scorer.source` (as stored in a search index).

    Stored `kattr-batch` scores reopen the export that computed them, and a server source
    reopens the version recorded in it, so new images (search queries) are scored by the same
    model.

    Raises:
        ModelVersionError: the server no longer serves the recorded version.
    """
    kind = source.get("kind")
    if kind in ("run", "model_dir"):
        return open_scorer(**{kind: source["path"]})
    if kind == "scores":
        return open_scorer(model_dir=source["model_dir"])
    if kind in ("rest", "grpc"):
        from grpc import StatusCode

        from kattr.client.served_model import ModelVersionError
        from kattr.server.errors import ServingError

        version = source.get("version")
        try:
            return open_scorer(**{kind: source["target"]}, model_name=source.get("model_name"),
                               values_from=source.get("values_from"), version=version)
        except ServingError as error:
            if version is None or error.code != StatusCode.NOT_FOUND:
                raise
            raise ModelVersionError(
                f"model {source.get('model_name')!r} version {version} at {source['target']} "
                f"scored this source and is no longer served (the server said: "
                f"{error.message}); rebuild with the version served now, or serve version "
                f"{version} again",
                pinned=version,
            ) from None
    raise ValueError(
        f"unknown model source kind {kind!r}; expected run, model_dir, scores, rest or grpc"
    )
