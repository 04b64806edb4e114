"""Metrics: the paper's average accuracy (eq. 2), precision, recall, F1 and average precision.

Two forms share `kattr.postprocess.decide`:
- streaming Keras metrics for `compile(metrics=...)`, over labelled rows only, so the history
  holds `<attribute>_average_accuracy`, `val_<attribute>_f1`, ...;
- `evaluation_report` on whole NumPy arrays for `kattr-eval` and run reports.

Label states: missing rows (all -1) are left out of every metric. Not-applicable rows (all 0)
are labelled with the empty set as target: they score 1 in eq. (2) when nothing is predicted,
and every predicted value is a false positive. Partly known rows (1 on known values, -1 on the
others: a multi-label cell with an unknown value, `kattr.labels`) have no full truth and are
left out too; the loss still learns from their known values.

Example:
    >>> report = evaluation_report(targets, scores, config.taxonomy, thresholds=None)
    >>> print(report_to_markdown(report))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
from keras import ops

# A module, not its names: this module is imported while Keras finishes importing
# (kattr._registration), possibly from inside kattr.postprocess's own `import tensorflow`.
from kattr import postprocess
from kattr.config import Config, TaxonomyConfig

__all__ = [
    "AverageAccuracy",
    "MaskedF1",
    "average_accuracy",
    "average_precision",
    "build_metrics",
    "evaluation_report",
    "labelled_rows",
    "report_to_markdown",
]


def labelled_rows(targets: np.ndarray) -> np.ndarray:
    """Bool [rows]: rows that are labelled or not applicable: every value known (no -1), so
    missing and partly known rows are left out."""
    return np.all(np.asarray(targets) >= 0, axis=-1)


def average_accuracy(targets: np.ndarray, decisions: np.ndarray) -> float:
    """Eq. (2) for one attribute: mean over labelled rows of |Y ∩ Ŷ| / |Y ∪ Ŷ| (1 if both empty).

    Args:
        targets: [rows, values] with 1/0, and -1 on missing rows (left out).
        decisions: bool or 0/1 [rows, values].

    Returns:
        The average accuracy, or NaN when no row is labelled.

    Example:
        >>> targets = np.array([[1, 0], [0, 0], [-1, -1]])  # labelled, not applicable, missing
        >>> average_accuracy(targets, np.array([[1, 1], [0, 0], [1, 0]]))  # (1/2 + 1) / 2
        0.75
    """
    keep = labelled_rows(targets)
    if not keep.any():
        return float("nan")
    truth = np.asarray(targets)[keep] == 1
    decided = np.asarray(decisions)[keep].astype(bool)
    intersection = (truth & decided).sum(axis=1)
    union = (truth | decided).sum(axis=1)
    return float(np.mean(np.where(union > 0, intersection / np.maximum(union, 1), 1.0)))


class _LabelledMetric(keras.metrics.Metric):
    """Base of the streaming metrics: decisions by `decide`, rows with a -1 left out."""

    def __init__(
        self, threshold=0.5, exclusive: bool = True, from_logits: bool = False, name=None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.threshold = threshold
        self.exclusive = exclusive
        self.from_logits = bool(from_logits)

    def _decisions(self, y_true, y_pred, sample_weight):
        """Truth and decisions as 0/1 floats [batch, values], row weights [batch] (0 if missing)."""
        y_true = ops.cast(y_true, "float32")
        weight = ops.cast(ops.all(ops.greater_equal(y_true, 0.0), axis=-1), "float32")
        if sample_weight is not None:
            weight = weight * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        scores = ops.cast(y_pred, "float32")
        if self.from_logits:
            scores = ops.sigmoid(scores)
        decided = postprocess.decide(scores, self.threshold, self.exclusive)
        return ops.cast(ops.equal(y_true, 1.0), "float32"), ops.cast(decided, "float32"), weight

    def get_config(self):
        return {
            **super().get_config(),
            "threshold": self.threshold,
            "exclusive": self.exclusive,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="kattr")
class AverageAccuracy(_LabelledMetric):
    """Streaming eq. (2): mean over labelled rows of |Y ∩ Ŷ| / |Y ∪ Ŷ| (1 when both are empty).

    Args:
        threshold: float or list of float. The decision threshold (scalar or per value).
            Defaults to 0.5.
        exclusive: bool. Keep only the best value (see `kattr.postprocess.decide`).
            Defaults to True.
        from_logits: bool. `y_pred` holds logits (sigmoid applied first), as in training.
            Defaults to False.
        name: str. The metric name. Defaults to `average_accuracy`.

    Example:
        >>> metric = AverageAccuracy()
        >>> metric.update_state(np.array([[1, 0], [-1, -1]]), np.array([[0.9, 0.1], [0.2, 0.9]]))
        >>> float(metric.result())  # the missing second row is left out
        1.0
    """

    def __init__(
        self, threshold=0.5, exclusive=True, from_logits=False, name="average_accuracy",
        dtype=None,
    ):
        super().__init__(threshold=threshold, exclusive=exclusive, from_logits=from_logits,
                         name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth, decided, weight = self._decisions(y_true, y_pred, sample_weight)
        intersection = ops.sum(truth * decided, axis=-1)
        union = ops.sum(ops.maximum(truth, decided), axis=-1)
        score = ops.where(union > 0, intersection / ops.maximum(union, 1.0), 1.0)
        self.total.assign_add(ops.cast(ops.sum(score * weight), self.dtype))
        self.count.assign_add(ops.cast(ops.sum(weight), self.dtype))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package="kattr")
class MaskedF1(_LabelledMetric):
    """Streaming micro F1 of one attribute over its labelled rows.

    Args:
        threshold: float or list of float. The decision threshold. Defaults to 0.5.
        exclusive: bool. Keep only the best value. Defaults to True.
        from_logits: bool. `y_pred` holds logits (sigmoid applied first). Defaults to False.
        name: str. The metric name. Defaults to `f1`.

    Example:
        >>> metric = MaskedF1(exclusive=False)
        >>> metric.update_state(np.array([[1, 1]]), np.array([[0.9, 0.1]]))
        >>> round(float(metric.result()), 3)  # precision 1, recall 0.5
        0.667
    """

    def __init__(self, threshold=0.5, exclusive=True, from_logits=False, name="f1", dtype=None):
        super().__init__(threshold=threshold, exclusive=exclusive, from_logits=from_logits,
                         name=name, dtype=dtype)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.false_positives = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.false_negatives = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth, decided, weight = self._decisions(y_true, y_pred, sample_weight)
        weight = weight[:, None]
        for variable, counts in (
            (self.true_positives, truth * decided),
            (self.false_positives, (1.0 - truth) * decided),
            (self.false_negatives, truth * (1.0 - decided)),
        ):
            variable.assign_add(ops.cast(ops.sum(counts * weight), self.dtype))

    def result(self):
        errors = self.false_positives + self.false_negatives
        return ops.divide_no_nan(2.0 * self.true_positives, 2.0 * self.true_positives + errors)


def build_metrics(
    config: Config, from_logits: bool = False
) -> dict[str, list[keras.metrics.Metric]]:
    """Fresh streaming metrics for every attribute output: average accuracy and micro F1.

    Args:
        config: the experiment config (`train.threshold`, the attributes).
        from_logits: the outputs are logits (`kattr.model.logits_model`), as in training.

    Example:
        >>> model.compile(loss=losses, metrics=build_metrics(config))
    """
    threshold = config.train.threshold
    return {
        attribute.name: [
            AverageAccuracy(threshold, attribute.exclusive, from_logits=from_logits),
            MaskedF1(threshold, attribute.exclusive, from_logits=from_logits),
        ]
        for attribute in config.taxonomy.attributes
    }


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float | None:
    """Micro average precision over the values of one attribute: threshold-free ranking quality.

    Every (labelled row, value) pair is one binary decision ranked by its score; missing rows
    are left out, not-applicable rows count as negatives. A constant score gives the share of
    positives, a perfect ranking 1.

    Returns:
        The average precision, or None when no labelled pair is positive.

    Example:
        >>> targets = np.array([[1, 0], [0, 0], [-1, -1]])
        >>> average_precision(targets, np.array([[0.9, 0.2], [0.1, 0.3], [0.5, 0.5]]))
        1.0
    """
    from sklearn.metrics import average_precision_score

    keep = labelled_rows(targets)
    truth = np.asarray(targets)[keep].ravel() == 1
    if not truth.any():
        return None
    return float(average_precision_score(truth, np.asarray(scores)[keep].ravel()))


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator)),
                     where=np.asarray(denominator) > 0)


def _precision_recall_f1(true_positives, false_positives, false_negatives) -> tuple:
    """Precision, recall and F1 from counts; 0 where undefined (nothing predicted or true)."""
    precision = _ratio(true_positives, true_positives + false_positives)
    recall = _ratio(true_positives, true_positives + false_negatives)
    f1 = _ratio(2 * true_positives, 2 * true_positives + false_positives + false_negatives)
    return precision, recall, f1


def _attribute_rows(
    target: np.ndarray, scores: np.ndarray, decisions: np.ndarray, name: str, threshold
) -> tuple:
    # Counted by hand: scikit-learn reads a one-value attribute as binary, not multi-label.
    keep = labelled_rows(target)
    truth = target[keep] == 1
    decided = decisions[keep].astype(bool)
    counts = [(truth & decided).sum(0), (~truth & decided).sum(0), (truth & ~decided).sum(0)]
    micro = _precision_recall_f1(*(c.sum() for c in counts))
    per_value = _precision_recall_f1(*counts)
    row = {
        "attribute": name,
        "average_accuracy": _optional(average_accuracy(target, decisions)),
        "average_precision": average_precision(target, scores),
        "support": int(keep.sum()),
        "missing": int((~keep).sum()),
        "not_applicable": int((~truth).all(axis=1).sum()),
        "threshold": threshold,
    }
    for metric, micro_value, values in zip(("precision", "recall", "f1"), micro, per_value,
                                           strict=True):
        row[f"{metric}_micro"] = float(micro_value)
        row[f"{metric}_macro"] = float(np.mean(values))
    return row, (*per_value, truth.sum(0))


def evaluation_report(
    targets: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray],
    taxonomy: TaxonomyConfig,
    thresholds: Mapping[str, float | Sequence[float]] | None = None,
) -> dict:
    """Offline metrics of every attribute and value.

    Eq. (2) and precision/recall/F1 are computed on labelled rows (missing rows left out,
    not-applicable rows kept with the empty set as target). Macro averages are unweighted means
    over all values of the attribute; a value that is never true nor predicted scores 0.

    Args:
        targets: attribute -> targets [rows, values] (1/0, -1 where missing).
        scores: attribute -> sigmoid scores [rows, values].
        taxonomy: the attributes (values, exclusive).
        thresholds: attribute -> scalar or per-value thresholds; None uses 0.5 everywhere.

    Returns:
        `{"attributes": [...], "values": [...], "mean_average_accuracy": float | None}`: one
        row per attribute (average_accuracy, average_precision (threshold-free), precision/
        recall/f1 `_micro` and `_macro`, support = labelled rows, missing, not_applicable,
        threshold) and one per value
        (attribute, value, precision, recall, f1, support = positive rows).
    """
    per_value_thresholds = postprocess.thresholds_for(taxonomy, thresholds)
    attribute_rows, value_rows = [], []
    for attribute in taxonomy.attributes:
        target = np.asarray(targets[attribute.name])
        score = np.asarray(scores[attribute.name], dtype=np.float32)
        threshold = per_value_thresholds[attribute.name]
        decisions = postprocess.decide(score, threshold, attribute.exclusive)
        shown = float(threshold[0]) if np.all(threshold == threshold[0]) else threshold.tolist()
        row, per_value = _attribute_rows(target, score, decisions, attribute.name, shown)
        attribute_rows.append(row)
        for value, precision, recall, f1, support in zip(attribute.values, *per_value, strict=True):
            value_rows.append({
                "attribute": attribute.name, "value": value, "precision": float(precision),
                "recall": float(recall), "f1": float(f1), "support": int(support),
            })
    accuracies = [row["average_accuracy"] for row in attribute_rows]
    accuracies = [accuracy for accuracy in accuracies if accuracy is not None]
    return {
        "attributes": attribute_rows,
        "values": value_rows,
        "mean_average_accuracy": float(np.mean(accuracies)) if accuracies else None,
    }


_ATTRIBUTE_COLUMNS = [
    "attribute", "average_accuracy", "average_precision", "precision_micro", "recall_micro",
    "f1_micro", "precision_macro", "recall_macro", "f1_macro", "support", "missing",
    "not_applicable",
]
_VALUE_COLUMNS = ["attribute", "value", "precision", "recall", "f1", "support"]


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return lines


def report_to_markdown(report: dict) -> str:
    """Renders an `evaluation_report` as Markdown: a summary line and two tables."""
    mean = _cell(report["mean_average_accuracy"])
    lines = [f"Mean average accuracy (eq. 2) over attributes: {mean}", "", "## Attributes", ""]
    lines += _table(report["attributes"], _ATTRIBUTE_COLUMNS)
    lines += ["", "## Values", ""]
    lines += _table(report["values"], _VALUE_COLUMNS)
    return "\n".join(lines) + "\n"
