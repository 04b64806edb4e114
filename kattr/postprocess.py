"""Post-processing: sigmoid scores to decisions, the ONE implementation shared by every path.

`decide` is written in TensorFlow ops so that the same code runs eagerly on NumPy arrays
(`kattr-eval`, calibration, reports) and inside a `tf.function` (the TF Serving export graph).

- multi-label attribute: every value whose score clears (>=) its threshold;
- exclusive attribute: the highest-scoring value if it clears its own threshold, else none.

Applicability (`applies_to`) follows a category per row: the catalog's category where the row
has a known one, else the predicted product type (the highest-scoring value of the
`taxonomy.category_output` head, whether or not it clears its threshold). An attribute that
does not apply to that category decides nothing. At serving only the image is known, so the
export always uses the predicted product type.

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

from kattr.config import AttributeConfig, TaxonomyConfig

__all__ = [
    "CATALOG",
    "MODEL",
    "applicability_table",
    "category_indices",
    "decide",
    "decide_attributes",
    "labels_from_decisions",
    "mask_not_applicable",
    "thresholds_for",
]

CATALOG = "catalog"
MODEL = "model"


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


def applicability_table(taxonomy: TaxonomyConfig, attribute: AttributeConfig) -> np.ndarray:
    """bool [categories + 1]: whether `attribute` applies to each category of the taxonomy,
    then False for an unknown category (index -1) unless it applies everywhere.

    Example:
        >>> applicability_table(taxonomy, sleeve)  # categories [tshirt, shoe], applies_to [tshirt]
        array([ True, False, False])
    """
    if attribute.applies_to is None:
        return np.ones(len(taxonomy.categories) + 1, dtype=bool)
    allowed = set(attribute.applies_to)
    return np.array([c in allowed for c in taxonomy.categories] + [False], dtype=bool)


def mask_not_applicable(decisions, category_index, table):
    """Clears the decisions of rows whose category the attribute does not apply to.

    Args:
        decisions: bool [batch, values] from `decide` (NumPy array or tf tensor).
        category_index: int [batch], each row's category in `taxonomy.categories`; -1 where
            unknown.
        table: `applicability_table` of the attribute.

    Returns:
        A bool NumPy array when `decisions` is a NumPy array, else a bool tf tensor.
    """
    as_numpy = isinstance(decisions, np.ndarray)
    table = tf.constant(np.asarray(table, dtype=bool))
    index = tf.cast(category_index, tf.int32)
    # -1 (unknown) reads the table's last entry.
    index = tf.where(index < 0, tf.shape(table)[0] - 1, index)
    applies = tf.gather(table, index)
    masked = tf.logical_and(tf.convert_to_tensor(decisions), applies[:, tf.newaxis])
    return masked.numpy() if as_numpy else masked


def category_indices(
    taxonomy: TaxonomyConfig,
    scores: Mapping[str, np.ndarray] | None = None,
    categories: Sequence[str | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The category each row's applicability follows, and where it comes from.

    Args:
        taxonomy: categories and the product-type output (`category_attribute`).
        scores: attribute -> scores [rows, values]; the product type's is used where the
            catalog has no known category (NaN rows, i.e. unscored images, stay unknown).
        categories: the catalog's canonical category per row (None where blank); None when
            only the images are known.

    Returns:
        int [rows] indices into `taxonomy.categories` (-1 where unknown) and str [rows]
        sources: `catalog`, `model` (predicted product type) or "" (unknown).

    Example:
        >>> category_indices(taxonomy, {"product_type": np.array([[0.2, 0.9]])}, [None])
        (array([1]), array(['model'], dtype=object))
    """
    derived = taxonomy.category_attribute
    if categories is None:
        if scores is None or derived is None:
            raise ValueError(
                "category_indices needs the catalog's categories, or scores of the product-type "
                "output (taxonomy.category_output)"
            )
        categories = [None] * len(scores[derived.name])
    position = {category: j for j, category in enumerate(taxonomy.categories)}
    index = np.array([position.get(c, -1) for c in categories], dtype=np.int64)
    source = np.where(index >= 0, CATALOG, "").astype(object)
    if derived is not None and scores is not None:
        predicted = np.asarray(scores[derived.name], np.float32)
        usable = (index < 0) & ~np.isnan(predicted).any(axis=1)
        index[usable] = np.argmax(predicted[usable], axis=1)
        source[usable] = MODEL
    return index, source


def decide_attributes(
    scores: Mapping[str, np.ndarray],
    taxonomy: TaxonomyConfig,
    thresholds: Mapping[str, float | Sequence[float]] | None = None,
    categories: Sequence[str | None] | None = None,
) -> dict[str, np.ndarray]:
    """`decide` for every attribute, then applicability: attribute -> bool [batch, values].

    Args:
        scores: attribute -> sigmoid scores [batch, values].
        taxonomy: the attributes.
        thresholds: see `thresholds_for`.
        categories: the catalog's canonical category per row (None where blank). Rows without
            a known category follow the predicted product type (see `category_indices`); with
            neither, attributes with `applies_to` decide nothing. When `categories` is None and
            the taxonomy has no product-type output, applicability is not applied.
    """
    per_value = thresholds_for(taxonomy, thresholds)
    decisions = {
        attribute.name: decide(
            np.asarray(scores[attribute.name]), per_value[attribute.name], attribute.exclusive
        )
        for attribute in taxonomy.attributes
    }
    if categories is None and taxonomy.category_attribute is None:
        return decisions
    index, _ = category_indices(taxonomy, scores, categories)
    return {
        attribute.name: mask_not_applicable(
            decisions[attribute.name], index, applicability_table(taxonomy, attribute)
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
