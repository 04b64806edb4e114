"""The error raised for curation settings and output folders that cannot be used."""

from __future__ import annotations

__all__ = ["CurationError"]


class CurationError(ValueError):
    """A curation setting or output folder that cannot be used; the message names it.

    Example:
        >>> raise CurationError("curation.rare_fallback.colour: unknown attribute")
        Traceback (most recent call last):
        CurationError: curation.rare_fallback.colour: unknown attribute
    """
