"""`index.html`: a self-contained page showing every explanation of a folder for a quick look.

Each image gets a section with its contact sheet, its predicted labels and its overlays; images
that could not be read are listed with the reason. All links are relative, so the folder can be
moved or served as is.

Example:
    >>> write_gallery("out", [GalleryImage("shirt.jpg", "sheets/0000_shirt.png", [...])])
    PosixPath('out/index.html')
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kattr._atomic import write_text_atomic

__all__ = ["GalleryImage", "GalleryOverlay", "write_gallery"]

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
section { border-top: 1px solid #ccc; padding: 0.8em 0; }
h2 { font-size: 1em; margin: 0 0 0.4em; word-break: break-all; }
.sheet { max-width: 100%; }
.overlays { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; }
figcaption { font-size: 0.8em; text-align: center; }
.overlays img { width: 300px; }
.labels { font-size: 0.9em; margin: 0.3em 0 0.6em; }
.skipped { color: #a00; }
"""


@dataclass(frozen=True)
class GalleryOverlay:
    """One overlay PNG (relative to the gallery folder) and its caption."""

    path: str
    caption: str


@dataclass(frozen=True)
class GalleryImage:
    """What the gallery shows for one input image.

    Args:
        source: the input image file, as given.
        sheet: the contact sheet PNG, relative to the gallery folder.
        overlays: the overlay PNGs of this image.
        labels: one line per attribute with its predicted labels, e.g. `colour: red 0.97`.
    """

    source: str
    sheet: str
    overlays: Sequence[GalleryOverlay] = field(default_factory=tuple)
    labels: Sequence[str] = field(default_factory=tuple)


def _image_section(entry: GalleryImage) -> str:
    escape = html.escape
    labels = "<br>".join(escape(line) for line in entry.labels)
    figures = "".join(
        f'<figure><a href="{escape(o.path)}"><img src="{escape(o.path)}" alt="{escape(o.caption)}">'
        f"</a><figcaption>{escape(o.caption)}</figcaption></figure>"
        for o in entry.overlays
    )
    return (
        f"<section><h2>{escape(entry.source)}</h2>"
        f'<a href="{escape(entry.sheet)}"><img class="sheet" src="{escape(entry.sheet)}" '
        f'alt="contact sheet of {escape(entry.source)}"></a>'
        f'<div class="labels">{labels}</div><div class="overlays">{figures}</div></section>'
    )


def write_gallery(
    output_dir: str | os.PathLike,
    images: Sequence[GalleryImage],
    skipped: Sequence[tuple[str, str]] = (),
    title: str = "kattr explanations",
) -> Path:
    """Writes `output_dir/index.html` (atomically) and returns its path.

    Args:
        output_dir: the folder holding the PNGs the entries name.
        images: the explained images, in order.
        skipped: (file, reason) of the inputs that could not be explained.
        title: the page title.
    """
    output_dir = Path(output_dir)
    escape = html.escape
    skipped_items = "".join(
        f"<li>{escape(path)}: {escape(reason)}</li>" for path, reason in skipped
    )
    skipped_block = (
        f'<section class="skipped"><h2>Skipped {len(skipped)} image(s)</h2>'
        f"<ul>{skipped_items}</ul></section>" if skipped else ""
    )
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{len(images)} image(s) explained.</p>"
        + "".join(_image_section(entry) for entry in images)
        + skipped_block
        + "</body></html>\n"
    )
    path = output_dir / "index.html"
    write_text_atomic(path, page)
    return path
