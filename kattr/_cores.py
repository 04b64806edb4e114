"""How many CPU cores this process may use, on every platform.

`os.sched_getaffinity` gives the cores the process is allowed to run on (a container or
`taskset` may allow fewer than the machine has) but exists only on some Unix systems (Linux,
not macOS or Windows); elsewhere `os.cpu_count()` is the best answer.

Example:
    >>> available_cores() >= 1
    True
"""

from __future__ import annotations

import os

__all__ = ["available_cores"]


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS reports one, else all.

    Always at least 1 (`os.cpu_count()` may return None when it cannot tell).
    """
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        try:
            return max(1, len(sched_getaffinity(0)))
        except OSError:  # some sandboxes refuse the call
            pass
    return os.cpu_count() or 1
