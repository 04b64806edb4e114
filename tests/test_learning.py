"""The model really learns the synthetic catalog: held-out scores beat a constant answer.

Uses the session's `trained_synthetic_run`: 1,200 images of 48 px with 10% blank and 10% wrong
labels, trained from scratch for 20 epochs at lr 1e-3 decayed by 0.9 per epoch (about 4 minutes
on 2 idle cores). It is measured on every held-out row (val and test: 360 rows). Each attribute is
checked twice:
- ranking: mean ROC AUC over values, no threshold (an untrained model scores about 0.5);
- eq. (2) at the run's 0.5 thresholds, against always answering the training split's most
  frequent value set.

The session trains with `train.deterministic: true`, so one machine gives the same weights on
every run of the suite. Before, thread timing changed the row order: one full-suite run left
occasion at a margin of +0.091 over the majority answer, where the same seed had given +0.22.
Four deterministic trainings of this recipe (train.seed 0-3, the product-type head at weight 0.5)
on the development machine gave a held-out mean AUC of:

| attribute    | mean AUC                  |
|--------------|---------------------------|
| colour       | 0.87 / 0.91 / 0.90 / 0.86 |
| pattern      | 0.88 / 0.88 / 0.87 / 0.90 |
| sleeve       | 0.79 / 0.80 / 0.75 / 0.77 |
| occasion     | 0.86 / 0.91 / 0.96 / 0.84 |
| product_type | 0.90 / 0.89 / 0.86 / 0.85 |

and an eq. (2) margin over the majority answer (0.5 thresholds) of colour +0.26 / +0.36 / +0.36
/ +0.25, pattern +0.22 / +0.24 / +0.19 / +0.30, sleeve +0.27 / +0.27 / +0.22 / +0.23, occasion
+0.28 / +0.33 / +0.41 / +0.26. Product type ranks well but its scores often stay under 0.5
(margin +0.01 to +0.17), so only its ranking is checked. Another machine or TensorFlow build
gives other (equally fixed) weights, so the bounds leave the room that seeds need.

With the head at weight 1.0, occasion ranged 0.54-0.93 (one CI run: 0.70), because the easy product
type took the first features; see the comment in `kattr.synth`. Shorter recipes left one attribute
at its priors in some runs (see `tests/conftest.py`), so the AUC bounds sit about 0.1 under the
weakest run and the margins at about half the weakest. A model that learned nothing about an
attribute (untrained, or trained with its targets sent to another head) ranks near 0.5 and fails.
"""

import numpy as np
import pytest

from kattr.catalog import load_catalog
from kattr.evaluation import predict_catalog
from kattr.metrics import average_accuracy
from kattr.postprocess import decide_attributes
from kattr.run_dir import load_run

pytestmark = pytest.mark.slow

# Held-out mean ROC AUC bound per attribute.
AUC_BOUNDS = {
    "colour": 0.75, "pattern": 0.75, "occasion": 0.75, "sleeve": 0.65, "product_type": 0.72,
}
# Held-out average accuracy (eq. 2) must beat the majority baseline by this much.
ACCURACY_MARGINS = {"colour": 0.1, "pattern": 0.04, "occasion": 0.1, "sleeve": 0.1}


def majority_baseline(train_targets, val_targets):
    """Eq. (2) of always predicting the training split's most frequent value set."""
    labelled = np.all(train_targets >= 0, axis=1)
    rows, counts = np.unique(train_targets[labelled], axis=0, return_counts=True)
    constant = rows[np.argmax(counts)]
    decisions = np.tile(constant, (len(val_targets), 1))
    return average_accuracy(val_targets, decisions)


def mean_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Mean over values of the ROC AUC on labelled entries (rank form, no threshold)."""
    aucs = []
    for value in range(targets.shape[1]):
        labelled = targets[:, value] >= 0
        truth, score = targets[labelled, value], scores[labelled, value]
        positives, negatives = score[truth == 1], score[truth == 0]
        if len(positives) and len(negatives):
            wins = (positives[:, None] > negatives[None, :]).mean()
            ties = (positives[:, None] == negatives[None, :]).mean()
            aucs.append(wins + 0.5 * ties)
    return float(np.mean(aucs))


@pytest.fixture(scope="module")
def evaluated(trained_synthetic_run):
    """`(train targets, held-out targets, scores, decisions)` of the session's trained run.

    Held out = the val and test rows together: neither is trained on, and one split alone
    holds too few sleeved products for a stable measure.
    """
    _, run_dir = trained_synthetic_run
    config, model, thresholds = load_run(run_dir)
    catalog = load_catalog(config)
    held_out = catalog.take(np.flatnonzero(np.isin(catalog.splits, ["val", "test"])))
    targets, scores, skipped = predict_catalog(model, config, held_out)
    assert skipped == 0
    decisions = decide_attributes(scores, config.taxonomy, thresholds)
    return catalog.subset("train").targets, targets, scores, decisions


@pytest.mark.parametrize("attribute", sorted(ACCURACY_MARGINS))
def test_attribute_is_learned_above_the_majority_baseline(evaluated, attribute):
    train_targets, targets, _, decisions = evaluated
    baseline = majority_baseline(train_targets[attribute], targets[attribute])
    accuracy = average_accuracy(targets[attribute], decisions[attribute])
    print(f"{attribute}: held-out average accuracy {accuracy:.3f}, majority {baseline:.3f}")
    assert accuracy > baseline + ACCURACY_MARGINS[attribute], (attribute, accuracy, baseline)


@pytest.mark.parametrize("attribute", sorted(AUC_BOUNDS))
def test_scores_rank_true_values_above_the_others(evaluated, attribute):
    """Ranking quality, independent of thresholds: held-out ROC AUC per value, averaged."""
    _, targets, scores, _ = evaluated
    auc = mean_auc(targets[attribute], scores[attribute])
    print(f"{attribute}: held-out mean AUC {auc:.3f}")
    assert auc > AUC_BOUNDS[attribute], (attribute, auc)
