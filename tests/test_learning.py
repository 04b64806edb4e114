"""The model really learns the synthetic catalog: a short run beats the majority baseline."""

import numpy as np
import pytest

from kattr.catalog import load_catalog
from kattr.config import load_config
from kattr.evaluation import predict_catalog
from kattr.metrics import average_accuracy
from kattr.run_dir import load_run
from kattr.synth import generate_catalog
from kattr.training import train

pytestmark = pytest.mark.slow


def majority_baseline(train_targets, val_targets):
    """Eq. (2) of always predicting the training split's most frequent value set."""
    labelled = np.all(train_targets >= 0, axis=1)
    rows, counts = np.unique(train_targets[labelled], axis=0, return_counts=True)
    constant = rows[np.argmax(counts)]
    decisions = np.tile(constant, (len(val_targets), 1))
    return average_accuracy(val_targets, decisions)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn")
    catalog = generate_catalog(root / "catalog", count=600, seed=3, image_size=32)
    config = load_config(
        catalog.config_path,
        [
            "train.epochs=12",
            "train.optimizer.learning_rate=0.003",
            "train.optimizer.decay_rate=1.0",
            "train.early_stopping_patience=null",
        ],
    )
    result = train(config, root / "run", verbose=0)
    return config, result


def test_colour_is_learned_far_above_the_majority_baseline(trained):
    config, result = trained
    rows = {row["attribute"]: row for row in result.report["attributes"]}
    data = load_catalog(config)
    train_split, val_split = data.subset("train"), data.subset("val")
    baseline = majority_baseline(train_split.targets["colour"], val_split.targets["colour"])
    assert rows["colour"]["average_accuracy"] > baseline + 0.25, (rows["colour"], baseline)


def test_scores_rank_the_true_colour_first(trained):
    """Ranking quality, independent of thresholds: the labelled value outscores the others."""
    config, result = trained
    _, model, _ = load_run(result.run_dir)
    targets, scores, _ = predict_catalog(model, config, load_catalog(config).subset("val"))
    for name, bound in (("colour", 0.6),):
        labelled = np.all(targets[name] >= 0, axis=1) & (targets[name].sum(axis=1) == 1)
        top1 = np.argmax(scores[name][labelled], axis=1) == np.argmax(
            targets[name][labelled], axis=1
        )
        assert top1.mean() > bound, (name, top1.mean())
