"""Drawing explanations: overlay PNGs and per-image contact sheets (matplotlib, no display).

An overlay shows the model's input beside the same image under the heatmap, with a colourbar
and the attribute, value and score in the title. A contact sheet shows the input and one panel
per attribute with the heatmap of its top value and the predicted labels with their scores, in
the manner of Figures 6 and 7 of the Flipkart attribute-extraction paper.

Figures are built with `matplotlib.figure.Figure` (Agg canvas, no pyplot state), so rendering
works on servers without a display and from several threads.

Example:
    >>> explanation = explainer.explain(images, "colour")[0]
    >>> render_overlay(images[0], explanation, "out/colour.png")
    PosixPath('out/colour.png')
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from kattr._atomic import atomic_path
from kattr.explain.gradcam import Explanation

__all__ = ["DEFAULT_COLORMAP", "render_contact_sheet", "render_overlay"]

DEFAULT_COLORMAP = "inferno"
_METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM"}
_PANEL_INCHES = 2.3
_SHEET_COLUMNS = 6
_DPI = 100


def _check_colormap(colormap: str) -> None:
    if colormap not in colormaps:
        raise ValueError(
            f"unknown colormap {colormap!r}; expected a matplotlib colormap such as inferno, "
            f"viridis, magma or turbo. Received: colormap={colormap!r}"
        )


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """The model input (float32 [0, 255]) as uint8 RGB for display."""
    return np.clip(np.asarray(image), 0, 255).astype(np.uint8)


def _show_overlay(axes, image: np.ndarray, heatmap: np.ndarray, colormap: str, alpha: float):
    axes.imshow(_as_rgb(image))
    shown = axes.imshow(heatmap, cmap=colormap, vmin=0.0, vmax=1.0, alpha=alpha,
                        interpolation="bilinear")
    axes.set_axis_off()
    return shown


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI)
    return path


def _colourbar_label(method: str) -> str:
    return f"{_METHOD_NAMES.get(method, method)} relevance (0 = none, 1 = image maximum)"


def render_overlay(
    image: np.ndarray,
    explanation: Explanation,
    path: str | os.PathLike,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = 0.5,
) -> Path:
    """Writes a PNG of the input beside the heatmap overlay, with colourbar and title.

    Args:
        image: the model input, float32 [height, width, 3] in [0, 255].
        explanation: the heatmap to draw and its attribute, value and score.
        path: the PNG to write (atomically).
        colormap: a perceptually uniform matplotlib colormap name.
        alpha: opacity of the heatmap over the image.

    Returns:
        `path`.
    """
    _check_colormap(colormap)
    figure = Figure(figsize=(2 * _PANEL_INCHES + 0.9, _PANEL_INCHES + 0.9), layout="constrained")
    original, overlay = figure.subplots(1, 2)
    original.imshow(_as_rgb(image))
    original.set_title("input", fontsize=9)
    original.set_axis_off()
    shown = _show_overlay(overlay, image, explanation.heatmap, colormap, alpha)
    overlay.set_title(_METHOD_NAMES.get(explanation.method, explanation.method), fontsize=9)
    status = "predicted" if explanation.predicted else "not predicted"
    figure.suptitle(
        f"{explanation.attribute} = {explanation.value}\nscore {explanation.score:.2f} ({status})",
        fontsize=10,
    )
    colourbar = figure.colorbar(shown, ax=overlay, fraction=0.046, pad=0.04)
    colourbar.set_label(_colourbar_label(explanation.method), fontsize=7)
    colourbar.ax.tick_params(labelsize=7)
    return _save(figure, path)


def _labels_text(labels: Sequence[tuple[str, float]], shown: Explanation) -> str:
    if labels:
        return "\n".join(f"{value} {score:.2f}" for value, score in labels)
    return f"none (top: {shown.value} {shown.score:.2f})"


def render_contact_sheet(
    image: np.ndarray,
    explanations: Sequence[Explanation],
    labels: Mapping[str, Sequence[tuple[str, float]]],
    path: str | os.PathLike,
    title: str = "",
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = 0.5,
) -> Path:
    """Writes one PNG with the input and a heatmap panel per attribute.

    Args:
        image: the model input, float32 [height, width, 3] in [0, 255].
        explanations: one per attribute, in panel order: the heatmap shown in its panel.
        labels: attribute -> the predicted (value, score) pairs listed under its panel; an
            attribute with none lists its top value as "none (top: ...)".
        path: the PNG to write (atomically).
        title: the sheet's title, e.g. the image file name.
        colormap: a perceptually uniform matplotlib colormap name.
        alpha: opacity of the heatmaps over the image.

    Returns:
        `path`.
    """
    _check_colormap(colormap)
    if not explanations:
        raise ValueError("render_contact_sheet: expected at least one explanation. Received: []")
    panels = len(explanations) + 1
    columns = min(panels, _SHEET_COLUMNS)
    rows = math.ceil(panels / columns)
    figure = Figure(
        figsize=(columns * _PANEL_INCHES + 0.8, rows * (_PANEL_INCHES + 0.9) + 0.4),
        layout="constrained",
    )
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    grid[0].imshow(_as_rgb(image))
    grid[0].set_title("input", fontsize=9)
    grid[0].set_axis_off()
    shown = None
    for axes, explanation in zip(grid[1:], explanations, strict=False):
        shown = _show_overlay(axes, image, explanation.heatmap, colormap, alpha)
        text = _labels_text(labels.get(explanation.attribute, ()), explanation)
        axes.set_title(f"{explanation.attribute}\n{text}", fontsize=8)
    for axes in grid[panels:]:
        axes.set_axis_off()
    colourbar = figure.colorbar(shown, ax=list(grid), fraction=0.02, pad=0.01)
    colourbar.set_label(_colourbar_label(explanations[0].method), fontsize=8)
    colourbar.ax.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)
