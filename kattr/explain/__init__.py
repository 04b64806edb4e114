"""Explanations: per-attribute heatmaps (Grad-CAM, Grad-CAM++, Score-CAM), overlays, galleries."""

from kattr.explain.gradcam import METHODS, Explainer, ExplainError, Explanation
from kattr.explain.localisation import area_share, box_mask, mass_inside

__all__ = [
    "METHODS",
    "ExplainError",
    "Explainer",
    "Explanation",
    "area_share",
    "box_mask",
    "mass_inside",
]
