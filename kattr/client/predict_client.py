"""`PredictClient`: attributes for images from TF Serving, kattr-serve or an exported model.

The client batches images, retries with exponential backoff while the server is UNAVAILABLE,
and decodes every protocol's outputs the same way (`decode_outputs`). When a batch is refused
as INVALID_ARGUMENT (say, one file is not an image), its images are sent one by one so only the
bad ones are reported.

Scores are keyed by value name when the client knows the names: from `kattr.json` for
`from_model_dir`, or from `value_names` / `read_value_names(...)` for a server (TF Serving's
metadata describes tensors, not taxonomies). Without names the scores are a list in the
model's value order; the labels are always names.

One version answers everything a server client predicts: before its first request the client
asks the server which version it serves (`served_model`, from the model metadata), checks the
value names against that version's `<attr>_scores` outputs, and pins every request to it. When
that version stops being served (a newer one replaced it), requests fail with
`ModelVersionError` instead of being answered by the new version; rerun to use it.

Example:
    >>> with PredictClient.from_grpc("127.0.0.1:8500", "shirts",
    ...                              value_names=read_value_names("exports/shirts")) as client:
    ...     client.predict([jpeg_bytes])[0]["colour"]["labels"]
    ['navy blue']
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import grpc
import numpy as np

from kattr.client.decode import NOT_AN_IMAGE, decode_outputs
from kattr.client.model_files import read_value_names
from kattr.client.served_model import ModelVersionError, ServedModel, check_value_names
from kattr.client.transports import GrpcTransport, InProcessTransport, RestTransport
from kattr.server.errors import ServingError
from kattr.serving_contract import DEFAULT_SIGNATURE

__all__ = ["PredictClient"]

logger = logging.getLogger(__name__)


class PredictClient:
    """Predicts attributes through a transport, with retries and one decoder.

    Args:
        transport: a `RestTransport`, `GrpcTransport` or `InProcessTransport`.
        value_names: attribute -> value names, to key the scores by name.
        retries: further attempts after an UNAVAILABLE answer.
        backoff_seconds: wait before the first retry; doubled for each further one.
        pin_version: for a server, resolve the served version before the first request and
            send every request to it (see the module docstring); False follows the latest
            version from request to request, and checks no value names.
    """

    def __init__(
        self,
        transport: RestTransport | GrpcTransport | InProcessTransport,
        value_names: Mapping[str, Sequence[str]] | None = None,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        pin_version: bool = True,
    ):
        if retries < 0:
            raise ValueError(f"retries must be >= 0. Received: {retries}")
        self.transport = transport
        self.value_names = dict(value_names) if value_names else None
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.pin_version = pin_version
        self.served: ServedModel | None = None  # what `served_model` resolved
        self._resolving = threading.Lock()  # threads sharing a client resolve once

    @property
    def model_version(self) -> int | None:
        """The served version every request goes to; None before `served_model` or in-process."""
        return None if self.served is None else self.served.version

    def served_model(self) -> ServedModel | None:
        """The served version and its signatures, resolved once; None for an in-process model.

        The first call asks the server (with the retries of `predict_raw`), checks
        `value_names` against the served `<attr>_scores` outputs and pins the transport to the
        version, so every later request is answered by it.

        Raises:
            ValueError: the value names do not match the served model (each mismatched
                attribute is named with both counts), or the signature is not served.
            ServingError: the server is unreachable or does not serve the model.
        """
        if self.served is not None or not self.pin_version:
            return self.served
        if not hasattr(self.transport, "model_metadata"):
            return None  # in-process, or a transport without a server behind it
        with self._resolving:
            if self.served is None:
                served = self._with_retries(self.transport.model_metadata)
                if self.value_names:
                    widths = served.score_widths(self.transport.signature_name)
                    check_value_names(
                        self.value_names, widths,
                        served=_described(self.transport, served.version),
                    )
                self.transport.pin(served.version)
                self.served = served
        return self.served

    @classmethod
    def from_rest(
        cls,
        url: str,
        model_name: str,
        signature_name: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        timeout: float = 30.0,
        **client_arguments,
    ) -> PredictClient:
        """A client of a REST server at `url` (``http://host:8501``)."""
        transport = RestTransport(url, model_name, signature_name, version, timeout)
        return cls(transport, **client_arguments)

    @classmethod
    def from_grpc(
        cls,
        target: str,
        model_name: str,
        signature_name: str = DEFAULT_SIGNATURE,
        version: int | None = None,
        timeout: float = 30.0,
        **client_arguments,
    ) -> PredictClient:
        """A client of a gRPC server at `target` (``host:8500``)."""
        transport = GrpcTransport(target, model_name, signature_name, version, timeout)
        return cls(transport, **client_arguments)

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | os.PathLike,
        signature_name: str = DEFAULT_SIGNATURE,
        **client_arguments,
    ) -> PredictClient:
        """An in-process client of an exported version (or the highest under a base path)."""
        transport = InProcessTransport(model_dir, signature_name)
        if "value_names" not in client_arguments:
            # A SavedModel without kattr.json: scores are keyed by index.
            with contextlib.suppress(FileNotFoundError):
                client_arguments["value_names"] = read_value_names(transport.export_dir)
        return cls(transport, **client_arguments)

    def predict_raw(self, images: Sequence[bytes]) -> dict[str, np.ndarray]:
        """The model's outputs for encoded images, retrying while the server is UNAVAILABLE.

        Raises:
            ModelVersionError: the pinned version is no longer served, or another answered.
            ServingError: any other failure of the server.
        """
        self.served_model()
        try:
            return self._with_retries(lambda: self.transport.predict(images))
        except ServingError as error:
            if self.served is None or error.code != grpc.StatusCode.NOT_FOUND:
                raise
            raise self._version_gone(error) from None

    def _version_gone(self, error: ServingError) -> ModelVersionError:
        """The error of a request for the pinned version that the server no longer serves."""
        pinned = self.served.version
        try:
            available = self.transport.served_versions()
        except (ServingError, AttributeError):
            available = []
        now = (f"version {available[0]} is served now" if available
               else "no version is served now")
        return ModelVersionError(
            f"{_described(self.transport, pinned)} is no longer served ({now}; the server "
            f"said: {error.message}). This run was pinned to version {pinned} so that one "
            "version answers every row, and refuses to mix in another: rerun it",
            pinned=pinned, answered=available[0] if available else None,
        )

    def _with_retries(self, call):
        """`call()`, retried with backoff while the server is UNAVAILABLE."""
        attempt = 0
        while True:
            try:
                return call()
            except ServingError as error:
                if error.code != grpc.StatusCode.UNAVAILABLE or attempt >= self.retries:
                    raise
                delay = self.backoff_seconds * 2**attempt
                logger.warning("server unavailable (%s); retrying in %.1f s", error.message, delay)
                time.sleep(delay)
                attempt += 1

    def predict(self, images: Sequence[bytes]) -> list[dict | None]:
        """Per image: ``{attribute: {"labels": [...], "scores": {value: score}}}``; None for
        bytes the export reports as not an image (its `image_ok` output)."""
        return decode_outputs(self.predict_raw(images), self.value_names)

    def predict_files(
        self, paths: Iterable[str | os.PathLike], batch_size: int = 32
    ) -> Iterator[dict]:
        """Yields ``{"image": path, "attributes": {...}}`` or ``{"image": path, "error": ...}``.

        Errors of single images (unreadable file, bytes that are not an image) become records;
        errors of the server (unavailable after retries, unknown model) are raised.
        """
        for records in self.predict_file_batches(paths, batch_size):
            yield from records

    def predict_file_batches(
        self, paths: Iterable[str | os.PathLike], batch_size: int = 32
    ) -> Iterator[list[dict]]:
        """Like `predict_files`, one list of records per request, each yielded as soon as it is
        answered (before the next request): a writer can flush it, so a server that fails
        later loses none of them. An unreadable file is yielded alone, at once."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
        batch: list[tuple[str, bytes]] = []
        for path in paths:
            try:
                batch.append((str(path), Path(path).read_bytes()))
            except OSError as error:
                yield [{"image": str(path),
                        "error": f"cannot read image: {error.strerror or error}"}]
                continue
            if len(batch) == batch_size:
                yield list(self._predict_batch(batch))
                batch = []
        if batch:
            yield list(self._predict_batch(batch))

    def _predict_batch(self, batch: list[tuple[str, bytes]]) -> Iterator[dict]:
        try:
            predictions = self.predict([data for _, data in batch])
        except ServingError as error:
            if error.code != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            if len(batch) == 1:
                yield {"image": batch[0][0], "error": error.message}
                return
            for item in batch:  # find the images the model refuses; keep the others
                yield from self._predict_batch([item])
            return
        for (path, _), attributes in zip(batch, predictions, strict=True):
            if attributes is None:  # the export's image_ok output: not an image
                yield {"image": path, "error": NOT_AN_IMAGE}
            else:
                yield {"image": path, "attributes": attributes}

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> PredictClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _described(transport, version: int) -> str:
    """``model 'shirts' version 3 at 127.0.0.1:8500``, for errors."""
    where = getattr(transport, "url", None) or getattr(transport, "target", None)
    name = getattr(transport, "model_name", "?")
    return f"model {name!r} version {version}" + (f" at {where}" if where else "")
