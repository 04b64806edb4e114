"""The masked multi-task loss of eq. (1) of the design notes.

`sum_t w_t * BCE_mask^t` with `BCE_mask^t = (1/N_t) * sum_i mask_i^t * sum_c BCE(y_itc, p_itc)`.
Each attribute output gets one `MaskedBinaryCrossentropy`; the weights `w_t` are Keras
`loss_weights`, so `model.compile(loss=losses, loss_weights=weights)` sums exactly eq. (1).

Label states: a missing row (all -1) has mask 0 and contributes exactly zero loss and zero
gradient; a not-applicable row (all 0) is labelled and every value is a negative. A partly known
row (a multi-label cell with an unknown value, `kattr.labels`) is labelled and only its values
>= 0 count: its -1 values give exactly zero loss and gradient.

Training uses `from_logits=True` on `kattr.model.logits_model(model)`: on probabilities Keras
clips the scores, so a confidently wrong prediction would get no gradient at all.

Example:
    >>> losses, loss_weights = build_losses(config, from_logits=True)
    >>> logits_model(model).compile(optimizer="adam", loss=losses, loss_weights=loss_weights)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kattr.config import Config

__all__ = ["MaskedBinaryCrossentropy", "balanced_positive_weights", "build_losses"]

NORMALISERS = ("batch", "labelled")


@keras.saving.register_keras_serializable(package="kattr")
class MaskedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy of one attribute over its labelled rows (eq. 1 of the design notes).

    The per-value losses of a row are summed, rows whose target is all -1 (missing) and -1
    values of a partly known row are masked out, and the sum over the batch is divided by the
    normaliser `N_t`. Under a `tf.distribute` strategy each replica also divides by the number
    of replicas, so the gradients summed over replicas are those of the global batch.

    Args:
        normaliser: str. `batch` divides by the batch size (the paper); `labelled` by the number
            of labelled rows in the batch (a batch without labelled rows gives 0; under a
            strategy, the mean over replicas of the per-replica values). Defaults to `batch`.
        focal_gamma: float. 0 gives plain BCE; > 0 the binary focal loss with this gamma
            (`keras.losses.binary_focal_crossentropy`, no class balancing). Defaults to 0.
        positive_weights: list of float or None. Weight of the positive term of each value
            (negatives keep weight 1), e.g. from `balanced_positive_weights`. Defaults to None.
        missing_as_negative: bool. Ablation: missing rows are all-negative instead of masked.
            Defaults to False.
        from_logits: bool. `y_pred` holds logits (numerically stable, unclipped BCE, as
            training uses) rather than sigmoid scores (clipped by Keras). Defaults to False.
        label_smoothing: float in [0, 1). Known targets move towards 0.5: a positive becomes
            `1 - label_smoothing / 2`, a negative `label_smoothing / 2` (as Keras' binary
            losses); missing values stay masked. Defaults to 0.
        name: str. The loss name.

    Example:
        >>> loss = MaskedBinaryCrossentropy()
        >>> y_true = np.array([[1, 0], [-1, -1]], "float32")  # the second row is missing
        >>> y_pred = np.array([[0.9, 0.2], [0.3, 0.3]], "float32")
        >>> float(loss(y_true, y_pred))  # (-log 0.9 - log 0.8) / 2 rows
        0.164...
        >>> logits = MaskedBinaryCrossentropy(from_logits=True)
        >>> float(logits(y_true, np.log(y_pred / (1 - y_pred))))  # the same loss on logits
        0.164...
    """

    def __init__(
        self,
        normaliser: str = "batch",
        focal_gamma: float = 0.0,
        positive_weights: list[float] | None = None,
        missing_as_negative: bool = False,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        name: str = "masked_binary_crossentropy",
        reduction: str = "sum",
        dtype: str | None = None,
    ):
        # `sum`: call() already divides by the normaliser, so the batch sum is exactly eq. (1).
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if normaliser not in NORMALISERS:
            raise ValueError(
                f"normaliser must be one of {NORMALISERS}. Received: normaliser={normaliser!r}"
            )
        if focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0. Received: focal_gamma={focal_gamma}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(
                f"label_smoothing must be in [0, 1). Received: label_smoothing={label_smoothing}"
            )
        self.normaliser = normaliser
        self.label_smoothing = float(label_smoothing)
        self.focal_gamma = float(focal_gamma)
        self.positive_weights = (
            None if positive_weights is None else [float(w) for w in positive_weights]
        )
        self.missing_as_negative = missing_as_negative
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.missing_as_negative:
            y_true = ops.maximum(y_true, 0.0)
        known = ops.greater_equal(y_true, 0.0)
        labelled = ops.any(known, axis=-1)
        targets = ops.where(known, y_true, ops.zeros_like(y_true))
        smoothed = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            per_value = self._logits_loss(smoothed, y_pred)
        elif self.focal_gamma:
            # A trailing axis of size 1 makes the Keras losses (means over the last axis)
            # elementwise.
            per_value = keras.losses.binary_focal_crossentropy(
                smoothed[..., None], y_pred[..., None], gamma=self.focal_gamma
            )
        else:
            per_value = keras.losses.binary_crossentropy(smoothed[..., None], y_pred[..., None])
        if self.positive_weights is not None:
            weights = ops.convert_to_tensor(self.positive_weights, dtype=per_value.dtype)
            per_value = per_value * (1.0 + (weights - 1.0) * targets)
        # Missing values (-1) of a partly known row add nothing, as a missing row does.
        per_value = ops.where(known, per_value, ops.zeros_like(per_value))
        per_row = ops.where(labelled, ops.sum(per_value, axis=-1), ops.zeros_like(per_value[:, 0]))
        if self.normaliser == "batch":
            count = ops.shape(y_true)[0]
        else:
            count = ops.maximum(ops.sum(ops.cast(labelled, "int32")), 1)
        # Keras scales only `sum_over_batch_size` losses for tf.distribute; do it for `sum`.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return per_row / ops.cast(count * replicas, per_row.dtype)

    def _logits_loss(self, targets, logits):
        """Elementwise BCE (or focal BCE) on logits, without clipping."""
        per_value = ops.binary_crossentropy(targets, logits, from_logits=True)
        if self.focal_gamma:
            scores = ops.sigmoid(logits)
            p_true = targets * scores + (1.0 - targets) * (1.0 - scores)
            per_value = ops.power(1.0 - p_true, self.focal_gamma) * per_value
        return per_value

    def get_config(self):
        config = super().get_config()
        config.update(
            normaliser=self.normaliser,
            focal_gamma=self.focal_gamma,
            positive_weights=self.positive_weights,
            missing_as_negative=self.missing_as_negative,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
        )
        return config


def balanced_positive_weights(targets: dict[str, np.ndarray], cap: float) -> dict[str, np.ndarray]:
    """Per-value positive weights `negatives / positives` over the labelled training rows.

    Not-applicable rows count as negatives, missing rows are ignored. Weights are clipped to
    `[1 / cap, cap]`; a value without positives gets `cap`.

    Args:
        targets: attribute -> targets [rows, values] (1/0, -1 where missing).
        cap: the largest weight (`train.loss.max_positive_weight`), >= 1.

    Example:
        >>> balanced_positive_weights({"colour": np.array([[1, 0], [0, 1], [0, 1]])}, cap=10)
        {'colour': array([2. , 0.5], dtype=float32)}
    """
    if cap < 1:
        raise ValueError(f"cap must be >= 1. Received: cap={cap}")
    weights = {}
    for name, target in targets.items():
        labelled = np.asarray(target)[np.any(np.asarray(target) >= 0, axis=-1)]
        positives = (labelled == 1).sum(axis=0)
        negatives = len(labelled) - positives
        ratio = np.divide(negatives, positives, out=np.full(positives.shape, cap, float),
                          where=positives > 0)
        weights[name] = np.clip(ratio, 1.0 / cap, cap).astype(np.float32)
    return weights


def build_losses(
    config: Config,
    positive_weights: dict[str, np.ndarray] | None = None,
    from_logits: bool = False,
) -> tuple[dict[str, MaskedBinaryCrossentropy], dict[str, float]]:
    """One loss per attribute output and the attribute weights `w_t`, from `config.train.loss`.

    Args:
        config: the experiment config.
        positive_weights: attribute -> per-value weights; required when
            `train.loss.positive_weights` is `balanced` (see `balanced_positive_weights`) and
            rejected when it is `none`.
        from_logits: the outputs compiled against are logits (`kattr.model.logits_model`),
            as in training; False for the sigmoid scores of the serving model.

    Returns:
        `(losses, loss_weights)`, both keyed by attribute name, for `model.compile`.
    """
    settings = config.train.loss
    attributes = config.taxonomy.attributes
    wanted = settings.positive_weights == "balanced"
    if wanted != (positive_weights is not None):
        raise ValueError(
            "train.loss.positive_weights is "
            f"{settings.positive_weights!r}: pass positive_weights "
            + ("computed with balanced_positive_weights()" if wanted else "=None")
        )
    losses = {}
    for attribute in attributes:
        weights = None
        if positive_weights is not None:
            if attribute.name not in positive_weights:
                raise ValueError(f"positive_weights: no weights for attribute {attribute.name!r}")
            weights = np.asarray(positive_weights[attribute.name], dtype=np.float32)
            if weights.shape != (len(attribute.values),):
                raise ValueError(
                    f"positive_weights[{attribute.name!r}]: expected shape "
                    f"({len(attribute.values)},). Received: {weights.shape}"
                )
            weights = weights.tolist()
        losses[attribute.name] = MaskedBinaryCrossentropy(
            normaliser=settings.normaliser,
            focal_gamma=settings.focal_gamma,
            positive_weights=weights,
            missing_as_negative=settings.missing_as_negative,
            from_logits=from_logits,
            label_smoothing=settings.label_smoothing,
            name=f"{attribute.name}_loss",
        )
    return losses, {attribute.name: attribute.weight for attribute in attributes}
