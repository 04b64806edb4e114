"""The versions of one model under a base path: load, warm up, swap, report status.

Only child directories whose names are integers are versions. The highest one is served (TF
Serving's default `latest` policy). A background thread polls the base path; a new version is
loaded and warmed up completely before it replaces the old one, so requests never see a gap.

A version that fails to load (a half-copied directory, a transient file system error, a failing
warmup request) is retried as TF Serving retries it: up to `max_num_load_retries` more times,
`load_retry_interval_seconds` apart, while its status stays LOADING. Then it is reported with
state END and its error, and tried again only when its files change. The old version keeps
serving throughout.

Example:
    >>> store = ModelStore("exports/shirts", poll_interval_seconds=1.0, max_num_load_retries=5)
    >>> store.start()
    >>> store.servable("shirts").version
    3
    >>> store.stop()
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import model_pb2

from kattr.server.errors import ServingError, invalid_argument, not_found
from kattr.server.protos import VersionStatus
from kattr.server.servable import Servable
from kattr.tf_serving_requests import WARMUP_PATH, WarmupError, read_warmup_requests

__all__ = ["ModelStore"]

logger = logging.getLogger(__name__)

_INT64_MAX = 2**63 - 1


def _version_dirs(base_path: Path) -> dict[int, Path] | None:
    """Integer-named child directories; None when the base path cannot be listed."""
    try:
        entries = list(os.scandir(base_path))
    except OSError:
        return None
    return {
        int(entry.name): Path(entry.path)
        for entry in entries
        if entry.name.isdigit() and int(entry.name) <= _INT64_MAX and entry.is_dir()
    }


def _fingerprint(path: Path) -> tuple:
    """Changes when a version directory is (re)written; a failed load is retried only then."""
    parts = []
    for candidate in (path, path / "saved_model.pb"):
        try:
            stat = candidate.stat()
            parts.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            parts.append(None)
    return tuple(parts)


@dataclass(frozen=True)
class _FailedLoad:
    """A version whose last load attempt failed: on which files, how many attempts, next try."""

    fingerprint: tuple
    attempts: int
    retry_at: float  # time.monotonic()


def _error_code(error: Exception) -> str:
    if isinstance(error, ServingError):
        return error.code.name
    if isinstance(error, tf.errors.OpError):
        return ServingError.from_tf_error(error).code.name
    if isinstance(error, OSError):
        return grpc.StatusCode.NOT_FOUND.name
    if isinstance(error, WarmupError | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT.name
    return grpc.StatusCode.UNKNOWN.name


class ModelStore:
    """Serves the latest version of the model under `base_path` and follows new versions.

    Args:
        base_path: folder holding `<version>/` SavedModel directories; its basename is the
            model name.
        poll_interval_seconds: how often the base path is scanned for versions.
        enable_warmup: replay `assets.extra/tf_serving_warmup_requests` before serving a version.
        max_num_load_retries: further attempts after a version fails to load (TF Serving's
            `--max_num_load_retries`).
        load_retry_interval_seconds: the wait before each retry (TF Serving's
            `--load_retry_interval_micros`); a retry happens at the first poll after it.
    """

    def __init__(
        self,
        base_path: str | os.PathLike,
        poll_interval_seconds: float = 1.0,
        enable_warmup: bool = True,
        max_num_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
    ):
        if poll_interval_seconds <= 0:
            raise ValueError(
                f"poll_interval_seconds must be positive. Received: {poll_interval_seconds}"
            )
        if max_num_load_retries < 0 or load_retry_interval_seconds < 0:
            raise ValueError(
                "max_num_load_retries and load_retry_interval_seconds must not be negative. "
                f"Received: {max_num_load_retries}, {load_retry_interval_seconds}"
            )
        self.base_path = Path(base_path).resolve()
        self.name = self.base_path.name
        self.poll_interval_seconds = poll_interval_seconds
        self.enable_warmup = enable_warmup
        self.max_num_load_retries = max_num_load_retries
        self.load_retry_interval_seconds = load_retry_interval_seconds
        self._current: Servable | None = None
        self._statuses: dict[int, VersionStatus] = {}
        self._failed: dict[int, _FailedLoad] = {}
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current_version(self) -> int | None:
        """The version being served, or None."""
        current = self._current
        return None if current is None else current.version

    def start(self) -> None:
        """Loads the current latest version (if any), then polls in a background thread."""
        self.poll()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="kattr-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops polling; the loaded version stays usable until the store is dropped."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _poll_loop(self) -> None:
        while not self._stopping.wait(self.poll_interval_seconds):
            self.poll()

    def poll(self) -> None:
        """Scans the base path once and loads, swaps or unloads as the latest policy says."""
        with self._poll_lock:
            versions = _version_dirs(self.base_path)
            if versions is None:
                logger.warning("cannot list base path %s; keeping what is loaded", self.base_path)
                return
            current = self._current
            if not versions:
                if current is not None:
                    self._swap(None)
                return
            latest = max(versions)
            if current is not None and current.version == latest:
                return
            fingerprint = _fingerprint(versions[latest])
            failed = self._failed.get(latest)
            attempts = 0
            if failed is not None and failed.fingerprint == fingerprint:
                if (
                    failed.attempts > self.max_num_load_retries
                    or time.monotonic() < failed.retry_at
                ):
                    return
                attempts = failed.attempts
            self._load(latest, versions[latest], fingerprint, attempts)

    def _set_status(self, status: VersionStatus) -> None:
        with self._lock:
            self._statuses[status.version] = status

    def _load(self, version: int, path: Path, fingerprint: tuple, attempts: int) -> None:
        """One load attempt; `attempts` earlier ones failed on the same files."""
        self._set_status(VersionStatus(version, "LOADING"))
        started = time.perf_counter()
        try:
            servable = Servable.load(self.name, version, path)
            warmup_file = path / WARMUP_PATH
            warmed = 0
            if self.enable_warmup and warmup_file.exists():
                warmed = servable.warmup(read_warmup_requests(warmup_file))
        except Exception as error:  # a bad version must not stop the poller or the old version
            message = getattr(error, "message", None) or str(error)
            attempts += 1
            retry_at = time.monotonic() + self.load_retry_interval_seconds
            self._failed[version] = _FailedLoad(fingerprint, attempts, retry_at)
            if attempts <= self.max_num_load_retries:  # the status stays LOADING meanwhile
                logger.warning(
                    "loading version %d of model %s failed (attempt %d of %d), retrying in "
                    "%.1f s: %s", version, self.name, attempts, self.max_num_load_retries + 1,
                    self.load_retry_interval_seconds, message,
                )
                return
            self._set_status(VersionStatus(version, "END", _error_code(error), message))
            serving = self.current_version
            logger.error(
                "loading version %d of model %s failed %d time(s); giving up until its files "
                "change (%s): %s", version, self.name, attempts,
                "nothing is served" if serving is None else f"version {serving} keeps serving",
                message,
            )
            return
        self._failed.pop(version, None)
        self._swap(servable)
        logger.info(
            "serving version %d of model %s from %s (loaded in %.1f s, %d warmup requests)",
            version, self.name, path, time.perf_counter() - started, warmed,
        )

    def _swap(self, servable: Servable | None) -> None:
        with self._lock:
            previous, self._current = self._current, servable
            if servable is not None:
                self._statuses[servable.version] = VersionStatus(servable.version, "AVAILABLE")
            if previous is not None and (servable is None or previous.version != servable.version):
                # In-flight requests keep their reference; the old version goes once they finish.
                self._statuses[previous.version] = VersionStatus(previous.version, "END")

    def servable(
        self, model_name: str, version: int | None = None, label: str | None = None
    ) -> Servable:
        """The version that answers a request for `model_name` (latest when `version` is None).

        Raises:
            ServingError: NOT_FOUND for another model or a version that is not being served;
                INVALID_ARGUMENT for a version label (kattr-serve has none).
        """
        if label:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        current = self._current
        if (
            model_name != self.name
            or current is None
            or (version is not None and version != current.version)
        ):
            request = f"Latest({model_name})" if version is None else (
                f"Specific({model_name}, {version})"
            )
            raise not_found(f"Servable not found for request: {request}")
        return current

    def servable_for_spec(self, model_spec: model_pb2.ModelSpec) -> Servable:
        """`servable` for a gRPC `ModelSpec`."""
        version = model_spec.version.value if model_spec.HasField("version") else None
        return self.servable(model_spec.name, version, model_spec.version_label or None)

    def statuses(
        self, model_name: str, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """Every known version of the model (newest first), or the one asked for.

        Raises:
            ServingError: NOT_FOUND with TF Serving's message when nothing matches.
        """
        if label:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        with self._lock:
            known = dict(self._statuses) if model_name == self.name else {}
        if version is not None:
            if version not in known:
                raise not_found(f"Could not find version {version} of model {model_name}")
            return [known[version]]
        if not known:
            raise not_found(f"Could not find any versions of model {model_name}")
        return [known[number] for number in sorted(known, reverse=True)]

    def wait_for_version(self, version: int | None = None, timeout: float = 30.0) -> Servable:
        """Blocks until `version` (or any version) is served; for tests and start-up scripts.

        Raises:
            TimeoutError: nothing matching was served within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self._current
            if current is not None and (version is None or current.version == version):
                return current
            time.sleep(0.02)
        raise TimeoutError(
            f"{self.base_path}: version {version if version is not None else 'any'} of model "
            f"{self.name} was not served within {timeout} s"
        )
