"""Explanations: per-attribute heatmaps (Grad-CAM, Grad-CAM++, Score-CAM), overlays, galleries.

Example:
    >>> explainer = Explainer.from_run("runs/demo")
    >>> report = explain_files(explainer, ["a.jpg", "b.jpg"], "explained", method="gradcam++")
    >>> report.gallery
    PosixPath('explained/index.html')
"""

from kattr.explain.gallery import GalleryImage, GalleryOverlay, write_gallery
from kattr.explain.gradcam import METHODS, Explainer, ExplainError, Explanation
from kattr.explain.inputs import LoadedImages, read_images
from kattr.explain.localisation import area_share, box_mask, mass_inside
from kattr.explain.render import DEFAULT_COLORMAP, render_contact_sheet, render_overlay
from kattr.explain.report import ExplainReport, explain_files

__all__ = [
    "DEFAULT_COLORMAP",
    "METHODS",
    "ExplainError",
    "ExplainReport",
    "Explainer",
    "Explanation",
    "GalleryImage",
    "GalleryOverlay",
    "LoadedImages",
    "area_share",
    "box_mask",
    "explain_files",
    "mass_inside",
    "read_images",
    "render_contact_sheet",
    "render_overlay",
    "write_gallery",
]
