"""One decoder of model outputs for every protocol: arrays in, a record per image out.

Example:
    >>> outputs = {"colour_scores": np.array([[0.9, 0.1]]),
    ...            "colour_labels": np.array([[b"red", b""]])}
    >>> decode_outputs(outputs, {"colour": ["red", "blue"]})
    [{'colour': {'labels': ['red'], 'scores': {'red': 0.9, 'blue': 0.1}}}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kattr.serving_contract import (
    IMAGE_OK_OUTPUT,
    attribute_of_scores_output,
    labels_output,
    scores_output,
)

__all__ = ["NOT_AN_IMAGE", "decode_outputs"]

# Why a row whose `image_ok` output is False has no prediction.
NOT_AN_IMAGE = "not a decodable JPEG, PNG, GIF, BMP or WebP image"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _scores(row: np.ndarray) -> list[float]:
    # float32's shortest decimal form, so REST (JSON text) and gRPC (binary) decode identically.
    return np.asarray(row, dtype=np.float32).astype(str).astype(np.float64).tolist()


def decode_outputs(
    outputs: Mapping[str, np.ndarray],
    value_names: Mapping[str, Sequence[str]] | None = None,
) -> list[dict | None]:
    """Per image: ``{attribute: {"labels": [...], "scores": {value: score}}}``, or None where
    the export's `image_ok` output says the bytes were not an image.

    Args:
        outputs: output name -> array with the batch first, from any protocol; `<attr>_scores`
            (float [N, C]) and `<attr>_labels` (strings [N, C], "" where not predicted).
        value_names: attribute -> its C value names (from `kattr.json`). Attributes without
            names get their scores as a list in output order.

    Raises:
        ValueError: an attribute's number of value names differs from its number of scores.
    """
    attributes = [attribute_of_scores_output(name) for name in outputs]
    attributes = [name for name in attributes if name is not None]
    if value_names:
        order = {name: index for index, name in enumerate(value_names)}
        attributes.sort(key=lambda name: (order.get(name, len(order)), name))
    else:
        attributes.sort()
    if not attributes:
        raise ValueError(f"no <attribute>_scores outputs. Received: {sorted(outputs)}")
    batch_size = len(outputs[scores_output(attributes[0])])
    records: list[dict] = [{} for _ in range(batch_size)]
    for attribute in attributes:
        scores = np.asarray(outputs[scores_output(attribute)])
        labels = outputs.get(labels_output(attribute))
        names = (value_names or {}).get(attribute)
        if names is not None and len(names) != scores.shape[-1]:
            raise ValueError(
                f"attribute {attribute!r}: {len(names)} value names for {scores.shape[-1]} "
                f"scores. Received names: {list(names)}"
            )
        for index, record in enumerate(records):
            row = _scores(scores[index])
            record[attribute] = {
                "labels": [] if labels is None else [_text(v) for v in labels[index] if _text(v)],
                "scores": dict(zip(names, row, strict=True)) if names is not None else row,
            }
    if IMAGE_OK_OUTPUT in outputs:
        ok = np.asarray(outputs[IMAGE_OK_OUTPUT]).reshape(-1)
        records = [record if good else None for record, good in zip(records, ok, strict=True)]
    return records
