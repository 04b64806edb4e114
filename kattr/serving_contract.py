"""The names an exported kattr model shares with every client: one place to spell them.

The exporter writes them, `kattr-serve` and TF Serving serve them, and the client and the
catalog apps read them; each imports the names from here (none from another's module).

    <version dir>/assets.extra/kattr.json                    METADATA_PATH
    <version dir>/assets.extra/tf_serving_warmup_requests    WARMUP_PATH
    signature `serving_default`: input `image_bytes` (tf.string [batch])
    outputs `<attr>_scores`, `<attr>_labels` per attribute, `embedding`, and `image_ok`
    (bool [batch]: False for bytes that do not decode as an image, whose scores and
    embedding are 0 and labels ""; exports before it lack the output)

Example:
    >>> scores_output("colour"), labels_output("colour")
    ('colour_scores', 'colour_labels')
    >>> attribute_of_scores_output("colour_scores")
    'colour'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_SIGNATURE",
    "EMBEDDING_OUTPUT",
    "IMAGES_INPUT",
    "IMAGES_SIGNATURE",
    "IMAGE_BYTES_INPUT",
    "IMAGE_OK_OUTPUT",
    "LABELS_SUFFIX",
    "METADATA_PATH",
    "SCORES_SUFFIX",
    "WARMUP_PATH",
    "attribute_of_scores_output",
    "labels_output",
    "scores_output",
]

DEFAULT_SIGNATURE = "serving_default"
IMAGE_BYTES_INPUT = "image_bytes"
IMAGE_OK_OUTPUT = "image_ok"
IMAGES_SIGNATURE = "predict_images"
IMAGES_INPUT = "images"
EMBEDDING_OUTPUT = "embedding"
SCORES_SUFFIX = "_scores"
LABELS_SUFFIX = "_labels"
METADATA_PATH = Path("assets.extra", "kattr.json")
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")


def scores_output(attribute: str) -> str:
    """The output holding an attribute's scores (float32 [batch, values]).

    Args:
        attribute: the attribute name, e.g. `colour`.
    """
    return attribute + SCORES_SUFFIX


def labels_output(attribute: str) -> str:
    """The output holding an attribute's value names, "" where not predicted.

    Args:
        attribute: the attribute name, e.g. `colour`.
    """
    return attribute + LABELS_SUFFIX


def attribute_of_scores_output(output: str) -> str | None:
    """The attribute of a `<attr>_scores` output name; None for any other output.

    Args:
        output: an output name of the signature.
    """
    if output.endswith(SCORES_SUFFIX) and len(output) > len(SCORES_SUFFIX):
        return output[: -len(SCORES_SUFFIX)]
    return None
