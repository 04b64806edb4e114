"""Explaining many image files into a folder: overlays, contact sheets, JSON and a gallery.

    OUTPUT_DIR/
      index.html          every result on one page (relative links)
      explanations.json   one record per overlay: image, attribute, value, score, predicted, file
      sheets/             one contact sheet per image: every attribute's top value and labels
      overlays/           one PNG per explained (image, attribute, value)

The overlays explain the requested attribute (and value), or every attribute's predicted values
(the top value where none is predicted) when none is requested. The contact sheets always show
every attribute. Files that cannot be read or decoded are reported and skipped.

Example:
    >>> report = explain_files(Explainer.from_run("runs/demo"), ["a.jpg", "b.jpg"], "out")
    >>> report.gallery, report.skipped
    (PosixPath('out/index.html'), [])
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kattr.explain.gallery import GalleryImage, GalleryOverlay, write_gallery
from kattr.explain.gradcam import METHODS, Explainer, ExplainError, Explanation
from kattr.explain.inputs import read_images
from kattr.explain.render import DEFAULT_COLORMAP, render_contact_sheet, render_overlay
from kattr.run_dir import write_json

__all__ = ["ExplainReport", "explain_files"]


@dataclass
class ExplainReport:
    """What `explain_files` wrote.

    Args:
        output_dir: the output folder.
        gallery: `index.html`.
        records: one dict per overlay (image, attribute, value, score, predicted, method,
            layer, overlay, sheet), as in `explanations.json`.
        sheets: the contact sheet of each explained image.
        skipped: (file, reason) of each input that could not be read or decoded.
    """

    output_dir: Path
    gallery: Path
    records: list[dict] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _predicted_labels(
    explainer: Explainer, scores: dict[str, np.ndarray], row: int
) -> dict[str, list[tuple[str, float]]]:
    """attribute -> (value, score) of the predicted values of image `row`, best first."""
    decisions = explainer.decisions(scores)
    labels = {}
    for name in explainer.attributes:
        values = explainer.attribute(name).values
        chosen = np.flatnonzero(decisions[name][row])
        ranked = sorted(chosen, key=lambda j: -scores[name][row, j])
        labels[name] = [(values[j], float(scores[name][row, j])) for j in ranked]
    return labels


def _label_lines(labels: dict[str, list[tuple[str, float]]]) -> list[str]:
    return [
        f"{name}: " + (", ".join(f"{v} {s:.2f}" for v, s in pairs) if pairs else "none")
        for name, pairs in labels.items()
    ]


def explain_files(
    explainer: Explainer,
    paths: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    attribute: str | None = None,
    value: str | None = None,
    method: str = "gradcam",
    colormap: str = DEFAULT_COLORMAP,
    progress: Callable[[str], None] | None = None,
) -> ExplainReport:
    """Explains image files and writes overlays, contact sheets, JSON and `index.html`.

    Args:
        explainer: the model to explain.
        paths: image files.
        output_dir: the folder to write into (created).
        attribute: explain only this attribute in the overlays. Defaults to every attribute.
        value: with `attribute`, explain this value for every image. Defaults to each
            predicted value, or the top value.
        method: `gradcam`, `gradcam++` or `scorecam`.
        colormap: the matplotlib colormap of the heatmaps.
        progress: called with one line per skipped file and per batch written.

    Raises:
        ExplainError: an unknown attribute, value or method (before any image is read).
    """
    if value is not None and attribute is None:
        raise ValueError("value: a value needs an attribute; pass attribute= as well. "
                         f"Received: value={value!r}")
    if method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; expected one of {list(METHODS)}. "
                           f"Received: method={method!r}")
    if attribute is not None:
        explainer.attribute(attribute)
        if value is not None:
            explainer.value_index(attribute, value)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = ExplainReport(output_dir=output_dir, gallery=output_dir / "index.html")
    entries = []
    paths = [str(p) for p in paths]
    for start in range(0, len(paths), explainer.batch_size):
        loaded = read_images(paths[start:start + explainer.batch_size], explainer.image_shape)
        for path, reason in loaded.failures:
            report.skipped.append((path, reason))
            if progress:
                progress(f"skipped {path}: {reason}")
        if not loaded.paths:
            continue
        entries += _explain_batch(
            explainer, loaded.images, loaded.paths, len(entries), report, attribute, value,
            method, colormap,
        )
        if progress:
            progress(f"explained {len(entries)} of {len(paths)} image(s)")
    write_json(report.records, output_dir / "explanations.json")
    write_gallery(output_dir, entries, report.skipped)
    return report


def _explain_batch(
    explainer: Explainer,
    images: np.ndarray,
    paths: list[str],
    first_position: int,
    report: ExplainReport,
    attribute: str | None,
    value: str | None,
    method: str,
    colormap: str,
) -> list[GalleryImage]:
    """Renders one batch; appends records and sheets to `report`; returns gallery entries."""
    scores = explainer.predict(images)
    per_attribute = {
        name: explainer.explain(images, name, method=method, scores=scores)
        for name in explainer.attributes
    }
    if attribute is None:
        overlays = [e for name in explainer.attributes for e in per_attribute[name]]
    elif value is None:
        overlays = per_attribute[attribute]
    else:
        overlays = explainer.explain(images, attribute, value, method=method, scores=scores)
    entries = []
    for row, source in enumerate(paths):
        key = f"{first_position + row:04d}_{_slug(Path(source).stem)}"
        labels = _predicted_labels(explainer, scores, row)
        top = [next(e for e in per_attribute[name] if e.image_index == row)
               for name in explainer.attributes]
        sheet = render_contact_sheet(
            images[row], top, labels, report.output_dir / "sheets" / f"{key}.png",
            title=Path(source).name, colormap=colormap,
        )
        report.sheets.append(sheet)
        shown = []
        for explanation in (e for e in overlays if e.image_index == row):
            name = f"{key}_{_slug(explanation.attribute)}_{_slug(explanation.value)}.png"
            render_overlay(images[row], explanation, report.output_dir / "overlays" / name,
                           colormap=colormap)
            shown.append(GalleryOverlay(
                f"overlays/{name}",
                f"{explanation.attribute} = {explanation.value} ({explanation.score:.2f})",
            ))
            report.records.append(_record(source, explanation, f"overlays/{name}",
                                          f"sheets/{key}.png"))
        entries.append(GalleryImage(source, f"sheets/{key}.png", shown, _label_lines(labels)))
    return entries


def _record(source: str, explanation: Explanation, overlay: str, sheet: str) -> dict:
    return {
        "image": source,
        "attribute": explanation.attribute,
        "value": explanation.value,
        "score": round(explanation.score, 6),
        "predicted": explanation.predicted,
        "method": explanation.method,
        "layer": explanation.layer,
        "overlay": overlay,
        "sheet": sheet,
    }
