"""Preparation of the fashion-products sample (Myntra photos) into a kattr manifest.

The raw folder (`labels.csv` + `images/`) is read, never written. The prepared manifest keeps
every raw column, with image paths still relative to the raw folder (the config's
`data.image_root` points there), and adds one column, `pattern`, mined from the seller's free
text `productDisplayName` by this rule:

1. The name is lower-cased and split into words at every non-letter ("Polka-Dot T-shirt" ->
   polka, dot, t, shirt), so "print" never matches inside "blueprint".
2. Each pattern has trigger words (`PATTERN_WORDS`):
   dotted: polka, dot, dots, dotted; floral: floral, flower, flowers, flowered;
   striped: stripe, stripes, striped, pinstripe, pinstripes, pinstriped;
   checked: check, checks, checked, checkered, chequered, plaid, gingham, tartan;
   printed: print, prints, printed, graphic; solid: solid, plain.
3. The first pattern in that order with a trigger word wins: a specific motif beats the
   generic "printed" ("Polka Dot Print Tunic" -> dotted), and "solid" is used only when no
   motif word appears.
4. No trigger word, a blank name, or a category the pattern does not apply to (footwear,
   jewellery, watches, cosmetics...: see the config's `applies_to`) leaves the cell blank.
   Blank means *missing* (masked in the loss), never "solid": a seller who did not mention the
   pattern said nothing about it. Most rows therefore stay honestly missing.

Colour synonyms ("Navy Blue" -> blue) are not touched here; the taxonomy's `merge` maps them,
so the manifest keeps what the catalog staff entered.

Typical usage:
    kattr-data prepare-fashion-products configs/fashion-products.yaml

Example:
    >>> mine_pattern("Mark Taylor Men Pink Striped Shirt")
    'striped'
    >>> prepare_fashion_products("../shared/data/fashion-products", "work/fashion-products")
    PosixPath('work/fashion-products/labels.csv')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from kattr.config import canonical
from kattr.labels import is_blank, read_manifest, write_manifest

__all__ = ["PATTERN_WORDS", "PreparationError", "mine_pattern", "prepare_fashion_products"]

# Ordered: the first pattern with a trigger word in the name wins.
PATTERN_WORDS: dict[str, tuple[str, ...]] = {
    "dotted": ("polka", "dot", "dots", "dotted"),
    "floral": ("floral", "flower", "flowers", "flowered"),
    "striped": ("stripe", "stripes", "striped", "pinstripe", "pinstripes", "pinstriped"),
    "checked": (
        "check", "checks", "checked", "checkered", "chequered", "plaid", "gingham", "tartan",
    ),
    "printed": ("print", "prints", "printed", "graphic"),
    "solid": ("solid", "plain"),
}
NAME_COLUMN = "productDisplayName"
CATEGORY_COLUMN = "articleType"
PATTERN_COLUMN = "pattern"


class PreparationError(ValueError):
    """A raw folder or output location that cannot be used; the message names the path."""


def mine_pattern(name: str | None) -> str | None:
    """The pattern a product name states by the module's word rule, or None when it states none.

    Example:
        >>> mine_pattern("109F Women Blue & Green Polka Dot Print Tunic")
        'dotted'
        >>> mine_pattern("Nike Men Black T-shirt") is None
        True
    """
    if is_blank(name):
        return None
    words = set(re.findall(r"[a-z]+", str(name).lower()))
    for pattern, triggers in PATTERN_WORDS.items():
        if words.intersection(triggers):
            return pattern
    return None


def prepare_fashion_products(
    source_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    pattern_applies_to: Iterable[str] | None = None,
    manifest_name: str = "labels.csv",
) -> Path:
    """Writes the manifest of the fashion-products sample with a mined `pattern` column.

    Args:
        source_dir: the raw folder holding `labels.csv` and `images/`; only read.
        output_dir: where the manifest is written (created if needed); must not be inside
            `source_dir`.
        pattern_applies_to: article types the pattern is mined for (compared after folding case
            and whitespace); None mines every row.
        manifest_name: file name of the manifest (`.csv` or `.parquet`).

    Returns:
        The path of the written manifest.

    Raises:
        PreparationError: the raw manifest lacks a needed column, or the output would land
            inside the raw folder.
    """
    source_dir = Path(source_dir)
    output_dir = Path(output_dir)
    if output_dir.resolve().is_relative_to(source_dir.resolve()):
        raise PreparationError(
            f"{output_dir}: the output must be outside the raw folder {source_dir}, which is "
            "never written"
        )
    frame = read_manifest(source_dir / "labels.csv")
    needed = ["image", CATEGORY_COLUMN, NAME_COLUMN]
    absent = [column for column in needed if column not in frame.columns]
    if absent:
        raise PreparationError(
            f"{source_dir / 'labels.csv'}: expected columns {needed}. "
            f"Received: {list(frame.columns)}"
        )
    if PATTERN_COLUMN in frame.columns:
        raise PreparationError(
            f"{source_dir / 'labels.csv'}: already has a {PATTERN_COLUMN!r} column; expected the "
            "raw sample"
        )
    applies = None if pattern_applies_to is None else {canonical(c) for c in pattern_applies_to}
    patterns = [
        mine_pattern(name)
        if applies is None or (not is_blank(category) and canonical(category) in applies)
        else None
        for name, category in zip(frame[NAME_COLUMN], frame[CATEGORY_COLUMN], strict=True)
    ]
    prepared = frame.assign(**{PATTERN_COLUMN: patterns})
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / manifest_name
    write_manifest(prepared, path)
    return path
