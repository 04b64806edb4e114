"""Post-processing: sigmoid scores to decisions, the ONE implementation shared by every path.

`decide` is written in TensorFlow ops so that the same code runs eagerly on NumPy arrays
(`kattr-eval`, calibration, reports) and inside a `tf.function` (the TF Serving export graph).

- multi-label attribute: every value whose score clears (>=) its threshold;
- exclusive attribute: the highest-scoring value if it clears its own threshold, else none.

Example:
    >>> decide(np.array([[0.7, 0.9, 0.1]]), thresholds=0.5, exclusive=True)
    array([[False,  True, False]])
    >>> decide(np.array([[0.7, 0.9, 0.1]]), thresholds=0.5, exclusive=False)
    array([[ True,  True, False]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from kattr.config import TaxonomyConfig

__all__ = ["decide", "decide_attributes", "labels_from_decisions", "thresholds_for"]


def decide(scores, thresholds, exclusive: bool):
    """Turns scores [batch, values] into boolean decisions of the same shape.

    Args:
        scores: NumPy array or tf tensor of sigmoid scores [batch, values].
        thresholds: a scalar, or one threshold per value [values].
        exclusive: keep at most the single best value.

    Returns:
        A bool NumPy array when `scores` is a NumPy array, else a bool tf tensor.
    """
    as_numpy = isinstance(scores, np.ndarray)
    scores = tf.convert_to_tensor(scores)
    if not scores.dtype.is_floating:
        scores = tf.cast(scores, tf.float32)
    decisions = scores >= tf.cast(thresholds, scores.dtype)
    if exclusive:
        best = tf.one_hot(tf.argmax(scores, axis=-1), tf.shape(scores)[-1], on_value=True,
                          off_value=False)
        decisions = tf.logical_and(decisions, best)
    return decisions.numpy() if as_numpy else decisions


def thresholds_for(
    taxonomy: TaxonomyConfig,
    thresholds: Mapping[str, float | Sequence[float]] | None = None,
    default: float = 0.5,
) -> dict[str, np.ndarray]:
    """Per-value thresholds of every attribute: attribute -> float32 [values].

    Args:
        taxonomy: the attributes.
        thresholds: attribute -> a scalar (broadcast to every value) or one threshold per
            value, e.g. from `kattr.calibration`; attributes not listed get `default`.
        default: threshold of unlisted attributes.

    Example:
        >>> thresholds_for(taxonomy, {"colour": 0.4})["colour"]
        array([0.4, 0.4, 0.4], dtype=float32)
    """
    thresholds = dict(thresholds or {})
    names = {attribute.name for attribute in taxonomy.attributes}
    unknown = sorted(set(thresholds) - names)
    if unknown:
        raise ValueError(
            f"thresholds: unknown attribute(s) {unknown}; expected some of {sorted(names)}"
        )
    result = {}
    for attribute in taxonomy.attributes:
        count = len(attribute.values)
        value = np.asarray(thresholds.get(attribute.name, default), dtype=np.float32)
        if value.ndim == 0:
            value = np.full(count, value, dtype=np.float32)
        if value.shape != (count,):
            raise ValueError(
                f"thresholds.{attribute.name}: expected a number or {count} numbers (one per "
                f"value). Received: {thresholds[attribute.name]!r}"
            )
        result[attribute.name] = value
    return result


def decide_attributes(
    scores: Mapping[str, np.ndarray],
    taxonomy: TaxonomyConfig,
    thresholds: Mapping[str, float | Sequence[float]] | None = None,
) -> dict[str, np.ndarray]:
    """`decide` for every attribute: attribute -> bool decisions [batch, values]."""
    per_value = thresholds_for(taxonomy, thresholds)
    return {
        attribute.name: decide(
            scores[attribute.name], per_value[attribute.name], attribute.exclusive
        )
        for attribute in taxonomy.attributes
    }


def labels_from_decisions(decisions, values: Sequence[str]) -> list[list[str]]:
    """The value names of each row of decisions [batch, values].

    Example:
        >>> labels_from_decisions(np.array([[True, False], [False, False]]), ["red", "blue"])
        [['red'], []]
    """
    decisions = np.asarray(decisions, dtype=bool)
    return [[values[j] for j in np.flatnonzero(row)] for row in decisions]
