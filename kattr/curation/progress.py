"""A dependency-free progress bar printed to stderr.

Example:
    >>> bar = ProgressBar(total=1000, description="hashing images")
    >>> bar.update(250)
    >>> bar.close()
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]

_BAR_WIDTH = 30
_MIN_REDRAW_SECONDS = 0.2


class ProgressBar:
    """Counts finished items and redraws one stderr line at most five times a second.

    Args:
        total: number of items expected.
        description: text shown before the bar.
        enabled: false makes every call a no-op (quiet runs, tests).
        stream: where the bar is drawn.

    Example:
        >>> bar = ProgressBar(total=10, description="work", enabled=False)
        >>> bar.update(10)
        >>> bar.count
        10
    """

    def __init__(
        self,
        total: int,
        description: str,
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        self.total = total
        self.description = description
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.count = 0
        self._start = time.monotonic()
        self._last_draw = 0.0

    def update(self, count: int = 1) -> None:
        """Adds `count` finished items and redraws when enough time has passed."""
        self.count += count
        now = time.monotonic()
        if now - self._last_draw >= _MIN_REDRAW_SECONDS or self.count >= self.total:
            self._draw(now)

    def close(self) -> None:
        """Draws the final state and ends the line."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        if not self.enabled:
            return
        fraction = self.count / self.total if self.total else 1.0
        filled = int(round(fraction * _BAR_WIDTH))
        rate = self.count / max(now - self._start, 1e-9)
        self.stream.write(
            f"\r{self.description} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] "
            f"{self.count:,}/{self.total:,} {fraction:4.0%} {rate:,.0f}/s"
        )
        self.stream.flush()
