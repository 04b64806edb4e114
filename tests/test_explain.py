"""The explanation API (kattr.explain.gradcam, kattr.explain.localisation) on an untrained model.

The model is small and untrained, on the tiny test backbone (`tiny_cnn`, whose feature map
ends in EfficientNetB0's `top_activation`): these tests check the plumbing (targets, batching,
shapes, errors, agreement with the Grad-CAM formula); the portrait test explains EfficientNetB0
itself, and tests/test_explain_localisation.py checks that the heatmaps of a trained model
(EfficientNetB0) point at the evidence.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kattr.config import load_config
from kattr.explain import (
    METHODS,
    Explainer,
    ExplainError,
    area_share,
    box_mask,
    mass_inside,
)
from kattr.explain.inputs import read_images
from kattr.model import build_model

SMALL_MODEL = ["model.attention_width=32", "model.feedforward_width=32", "model.branch_units=[16]"]
TINY_BACKBONE = ["model.backbone=tiny_cnn"]
# A finer feature map of tiny_cnn: stride 8, so 8x8 at 64 px, 24 channels.
FINER_LAYER = "stage2_activation"


@pytest.fixture(scope="module")
def config(synthetic_catalog):
    return load_config(synthetic_catalog.config_path, [*SMALL_MODEL, *TINY_BACKBONE])


@pytest.fixture(scope="module")
def model(config):
    keras.utils.set_random_seed(1)
    return build_model(config)


@pytest.fixture(scope="module")
def images(synthetic_catalog):
    paths = sorted(synthetic_catalog.image_dir.glob("*.jpg"))[:3]
    return read_images(paths, 64).images


@pytest.fixture(scope="module")
def explainer(model, config):
    return Explainer(model, config.taxonomy, batch_size=16, scorecam_channels=8)


def _gradcam_by_formula(model, images, layer, attribute, index):
    """Grad-CAM as written in the paper (and the keras-io example), on the attribute's logits."""
    probe = keras.Model(model.input, [model.get_layer(layer).output,
                                      model.get_layer(attribute).input])
    with tf.GradientTape() as tape:
        features, logits = probe(images, training=False)
        target = logits[:, index]
    gradients = tape.gradient(target, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))
    resized = tf.image.resize(cam[..., None], images.shape[1:3])[..., 0].numpy()
    return resized / resized.max(axis=(1, 2), keepdims=True)


def test_default_layer_is_the_backbones_last_feature_map(explainer):
    assert explainer.layer == "top_activation"
    assert explainer.attributes == ["colour", "pattern", "sleeve", "occasion", "product_type"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("count", [1, 3])
def test_heatmaps_have_the_image_size_and_unit_range(explainer, images, method, count):
    explanations = explainer.explain(images[:count], "colour", method=method)
    assert sorted({e.image_index for e in explanations}) == list(range(count))
    for explanation in explanations:
        heatmap = explanation.heatmap
        assert heatmap.shape == (64, 64) and heatmap.dtype == np.float32
        assert heatmap.min() >= 0.0
        assert heatmap.max() == pytest.approx(1.0) or heatmap.max() == 0.0
        assert explanation.method == method and explanation.layer == "top_activation"
    assert any(e.heatmap.max() > 0 for e in explanations), "every map is empty: nothing tested"


def test_portrait_model_explains_height_by_width_images(synthetic_catalog):
    # EfficientNetB0 itself (the synthetic config's backbone): its last feature map is the target.
    config = load_config(synthetic_catalog.config_path, [*SMALL_MODEL, "data.image_size=[96, 64]"])
    assert config.model.backbone == "efficientnetb0"
    model = build_model(config)
    explainer = Explainer(model, config.taxonomy, batch_size=4)
    assert explainer.layer == "top_activation"
    assert model.get_layer(explainer.layer).output.shape == (None, 3, 2, 1280)
    assert explainer.image_shape == (96, 64)
    paths = sorted(synthetic_catalog.image_dir.glob("*.jpg"))[:2]
    loaded = read_images(paths, explainer.image_shape)
    assert loaded.images.shape == (2, 96, 64, 3)
    for explanation in explainer.explain(loaded.images, "colour"):
        assert explanation.heatmap.shape == (96, 64)
    with pytest.raises(ExplainError, match=r"\[batch, 96, 64, 3\]"):
        explainer.explain(loaded.images[:, :64], "colour")


@pytest.mark.parametrize(
    ("method", "layer", "channels"),
    [
        ("gradcam", None, 8),
        ("gradcam++", None, 8),
        # Exact Score-CAM (every channel, 24 here) shares passes between images; Faster
        # Score-CAM runs one image per pass.
        ("scorecam", FINER_LAYER, None),
    ],
)
def test_a_heatmap_does_not_depend_on_the_other_images_of_the_batch(
    model, config, images, method, layer, channels
):
    def explainer(batch_size):
        return Explainer(model, config.taxonomy, layer=layer, batch_size=batch_size,
                         scorecam_channels=channels)

    together = explainer(2).explain(images, "pattern", "striped", method=method)
    single = explainer(16)
    for index, explanation in enumerate(together):
        alone = single.explain(images[index:index + 1], "pattern", "striped", method=method)
        np.testing.assert_allclose(explanation.heatmap, alone[0].heatmap, atol=1e-4)
        assert explanation.score == pytest.approx(alone[0].score, abs=1e-5)
    assert any(e.heatmap.max() > 0 for e in together), "every map is empty: nothing tested"


def test_gradcam_matches_the_formula_on_the_logits(model, explainer, images):
    explanations = explainer.explain(images, "sleeve", "long")
    expected = _gradcam_by_formula(model, images, "top_activation", "sleeve", 1)
    np.testing.assert_allclose(np.stack([e.heatmap for e in explanations]), expected, atol=1e-4)


def test_a_configured_layer_is_explained_instead(model, config, images):
    default = Explainer(model, config.taxonomy).explain(images[:1], "colour", "red")[0]
    finer = Explainer(model, config.taxonomy, layer=FINER_LAYER)  # 8x8 at 64 px
    explanation = finer.explain(images[:1], "colour", "red")[0]
    assert explanation.layer == FINER_LAYER
    assert model.get_layer(FINER_LAYER).output.shape == (None, 8, 8, 24)
    expected = _gradcam_by_formula(model, images[:1], FINER_LAYER, "colour", 0)[0]
    np.testing.assert_allclose(explanation.heatmap, expected, atol=1e-4)
    assert not np.allclose(explanation.heatmap, default.heatmap, atol=1e-2)


def test_each_value_of_an_attribute_gets_its_own_heatmap(explainer, images):
    red = explainer.explain(images[:1], "colour", "red")[0]
    blue = explainer.explain(images[:1], "colour", "blue")[0]
    assert (red.value, blue.value) == ("red", "blue")
    assert not np.allclose(red.heatmap, blue.heatmap)


def test_scores_are_the_model_outputs(explainer, model, images):
    scores = keras.ops.convert_to_numpy(model(images, training=False)["occasion"])
    for explanation in explainer.explain(images, "occasion", "party"):
        assert explanation.score == pytest.approx(scores[explanation.image_index, 1], abs=1e-5)


def test_default_values_are_the_predicted_ones_best_first(model, config, images):
    # Threshold 0 predicts every occasion (multi-label): one heatmap per value, best first.
    everything = Explainer(model, config.taxonomy, {"occasion": 0.0})
    explanations = everything.explain(images, "occasion")
    scores = everything.predict(images)["occasion"]
    for index in range(len(images)):
        mine = [e for e in explanations if e.image_index == index]
        assert [e.value for e in mine] == [
            ["casual", "party", "sport"][j] for j in np.argsort(-scores[index], kind="stable")
        ]
        assert all(e.predicted for e in mine)


def test_default_value_is_the_top_one_when_nothing_is_predicted(model, config, images):
    # Threshold 1 predicts nothing: each image explains its top-scoring value, not predicted.
    nothing = Explainer(model, config.taxonomy, {"colour": 1.0})
    explanations = nothing.explain(images, "colour")
    scores = nothing.predict(images)["colour"]
    assert [e.image_index for e in explanations] == list(range(len(images)))
    values = config.taxonomy.attributes[0].values
    assert [e.value for e in explanations] == [values[j] for j in scores.argmax(axis=1)]
    assert not any(e.predicted for e in explanations)


def test_unknown_attribute_lists_the_valid_ones(explainer, images):
    with pytest.raises(ExplainError, match=r"unknown attribute 'neck'.*'colour', 'pattern'"):
        explainer.explain(images, "neck")


def test_values_are_canonicalised_like_manifest_cells(explainer, images):
    assert explainer.explain(images[:1], "colour", "  RED ")[0].value == "red"


def test_unknown_value_lists_the_attributes_values(explainer, images):
    with pytest.raises(ExplainError, match=r"unknown value 'pink'.*'red', 'blue', 'green'"):
        explainer.explain(images, "colour", "pink")


def test_unknown_method_lists_the_methods(explainer, images):
    with pytest.raises(ExplainError, match=r"gradcam\+\+"):
        explainer.explain(images, "colour", method="lime")


@pytest.mark.parametrize("layer", ["no_such_layer", "embedding"])
def test_a_layer_without_an_image_output_is_refused(model, config, layer):
    with pytest.raises(ExplainError, match=rf"layer '{layer}'.*4-D.*'top_activation'"):
        Explainer(model, config.taxonomy, layer=layer)


def test_images_of_the_wrong_size_are_refused(explainer):
    with pytest.raises(ExplainError, match=r"\[batch, 64, 64, 3\].*\(1, 32, 32, 3\)"):
        explainer.explain(np.zeros((1, 32, 32, 3), np.float32), "colour")


def test_read_images_reports_and_skips_bad_files(synthetic_catalog, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\x00not an image")
    good = sorted(synthetic_catalog.image_dir.glob("*.jpg"))[0]
    loaded = read_images([broken, good, tmp_path / "absent.jpg"], 64)
    assert loaded.paths == [str(good)]
    assert loaded.images.shape == (1, 64, 64, 3)
    assert [path for path, _ in loaded.failures] == [str(broken), str(tmp_path / "absent.jpg")]
    assert "decode" in loaded.failures[0][1] and "not found" in loaded.failures[1][1]


def test_mass_inside_and_area_share():
    heatmap = np.zeros((8, 8))
    heatmap[2:4, 1:3] = 1.0
    heatmap[6, 6] = 2.0
    boxes = [[1, 2, 3, 4]]  # x0, y0, x1, y1 with x1, y1 exclusive: exactly the block of ones
    assert box_mask((8, 8), boxes).sum() == 4
    assert mass_inside(heatmap, boxes) == pytest.approx(4 / 6)
    assert area_share((8, 8), boxes) == pytest.approx(4 / 64)
    # Overlapping boxes count once.
    assert area_share((8, 8), [[0, 0, 2, 2], [1, 1, 3, 3]]) == pytest.approx(7 / 64)
    assert np.isnan(mass_inside(np.zeros((8, 8)), boxes))
