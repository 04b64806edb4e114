from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kattr import backbones
from kattr.backbones import TINY_CNN_CHANNELS, build_backbone, register_backbone
from kattr.config import ConfigError, config_from_dict, load_config
from kattr.losses import build_losses
from kattr.model import (
    EMBEDDING_LAYER,
    build_model,
    embedding_model,
    inference_model,
    last_conv_layer_name,
    precision_policy,
    set_output_biases_to_priors,
    zoom_view,
)

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
SIZE = 64  # 2x2 spatial tokens
# Tests that need "a model" build the tiny test backbone; those about EfficientNetB0 itself
# (its layers, weights, strides, the shipped configs) pass EFFICIENTNET.
EFFICIENTNET = {"backbone": "efficientnetb0"}


def tiny_config(model=None, size=SIZE, attributes=None):
    return config_from_dict(
        {
            "data": {"image_size": size},
            "taxonomy": {
                "category_column": "category",
                "categories": ["top", "shoe"],
                "attributes": attributes
                or [
                    {"name": "colour", "values": ["red", "blue", "green"]},
                    {"name": "occasion", "values": ["casual", "party"], "exclusive": False},
                ],
            },
            "model": {
                "backbone": "tiny_cnn",
                "branch_units": [16, 8],
                "attention_width": 32,
                "feedforward_width": 32,
                **(model or {}),
            },
        }
    )


def images(count=2, size=SIZE, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def model():
    return build_model(tiny_config())


@pytest.fixture(scope="module")
def efficientnet():
    """The model on EfficientNetB0 (32 px: one token), for the tests about EfficientNetB0."""
    return build_model(tiny_config(EFFICIENTNET, size=32))


def test_outputs_are_named_sigmoid_scores_per_attribute(model):
    scores = model(images())
    assert sorted(scores) == ["colour", "occasion", "product_type"]  # category_output default
    assert scores["colour"].shape == (2, 3)
    assert scores["occasion"].shape == (2, 2)
    for name, value in scores.items():
        assert model.get_layer(name).name == name
        assert value.dtype == "float32"
        value = keras.ops.convert_to_numpy(value)
        assert np.all((value > 0) & (value < 1))
    assert model.input.name == "image"


def test_embedding_model_gives_the_pooled_feature(model):
    embed = embedding_model(model)
    features = keras.ops.convert_to_numpy(embed(images()))
    assert features.shape == (2, 32)
    assert model.get_layer("embedding").output.shape == (None, 32)
    assert not np.allclose(features[0], features[1])


def test_flip_average_scores_the_mean_of_the_image_and_its_mirror_image(model):
    pictures = images(3)
    mirrored = pictures[:, :, ::-1]  # [batch, height, width, channels]: left-right
    plain, flipped = model(pictures), model(mirrored)
    forward = inference_model(model, flip_average=True, embedding=True)
    averaged, averaged_mirrored = forward(pictures), forward(mirrored)
    assert sorted(averaged) == sorted([*model.output_names, EMBEDDING_LAYER])
    embeddings = embedding_model(model)
    expected = {
        **{name: (plain[name] + flipped[name]) / 2 for name in model.output_names},
        EMBEDDING_LAYER: (embeddings(pictures) + embeddings(mirrored)) / 2,
    }
    for name, value in expected.items():
        np.testing.assert_allclose(averaged[name], value, atol=1e-6, err_msg=name)
        # The average no longer depends on which way the product faces.
        np.testing.assert_allclose(averaged_mirrored[name], averaged[name], atol=1e-6)
    # ...while the model alone does, so the checks above can fail.
    assert np.abs(np.asarray(plain["colour"]) - np.asarray(flipped["colour"])).max() > 1e-5


def test_inference_model_without_flip_average_is_the_model(model):
    pictures = images(2)
    forward = inference_model(model)
    assert sorted(forward(pictures)) == sorted(model.output_names)
    for name, value in model(pictures).items():
        np.testing.assert_allclose(forward(pictures)[name], value, atol=1e-7)


def test_zoom_view_scales_the_product_about_the_centre_on_white():
    # A black 8x8 square in the middle of a white 32x24 photo.
    photo = np.full((1, 32, 24, 3), 255.0, "float32")
    photo[:, 12:20, 8:16] = 0.0
    for factor, side in ((1.5, 12), (0.75, 6)):
        view = keras.ops.convert_to_numpy(zoom_view(photo, factor))
        assert view.shape == photo.shape
        rows, columns = np.nonzero(view[0, :, :, 0] < 128)
        assert len(rows) == side * side, factor
        assert (rows.min() + rows.max()) / 2 == pytest.approx(15.5, abs=0.5)
        assert (columns.min() + columns.max()) / 2 == pytest.approx(11.5, abs=0.5)
    # Shrinking pads with white, like the training zoom: the borders stay white.
    shrunk = keras.ops.convert_to_numpy(zoom_view(np.zeros_like(photo), 0.75))
    assert (shrunk[0, :4] == 255).all() and (shrunk[0, :, :3] == 255).all()
    assert (shrunk[0, 4:28, 3:21] == 0).all()


def test_zoom_average_scores_the_mean_over_every_zoom_and_mirror_image(model):
    pictures = images(3)
    views = [pictures] + [keras.ops.convert_to_numpy(zoom_view(pictures, f)) for f in (0.9, 1.1)]
    views += [view[:, :, ::-1] for view in views]
    embeddings = embedding_model(model)
    forward = inference_model(model, flip_average=True, embedding=True, zoom_average=[0.9, 1.1])
    averaged = forward(pictures)
    flip_only = inference_model(model, flip_average=True)(pictures)
    scored = [{**model(view), EMBEDDING_LAYER: embeddings(view)} for view in views]
    for name in [*model.output_names, EMBEDDING_LAYER]:
        expected = np.mean([keras.ops.convert_to_numpy(view[name]) for view in scored], axis=0)
        np.testing.assert_allclose(averaged[name], expected, atol=1e-6, err_msg=name)
    # The zoomed views change the scores, so the check above can fail.
    assert np.abs(np.asarray(averaged["colour"]) - np.asarray(flip_only["colour"])).max() > 1e-5


def test_last_conv_layer_is_the_backbone_feature_map(model, efficientnet):
    name = last_conv_layer_name(model)
    assert name == "top_activation"  # tiny_cnn ends in EfficientNetB0's layer names
    assert model.get_layer(name).output.shape == (None, SIZE // 32, SIZE // 32, TINY_CNN_CHANNELS)
    assert last_conv_layer_name(efficientnet) == "top_activation"
    assert efficientnet.get_layer("top_activation").output.shape == (None, 1, 1, 1280)
    assert efficientnet.get_layer("block6a_dwconv").strides == (2, 2)


@pytest.mark.parametrize("backbone", ["model", "efficientnet"])
def test_save_and_safe_load_round_trip(backbone, request, tmp_path):
    model = request.getfixturevalue(backbone)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    batch = images(seed=3, size=model.input.shape[1])
    expected, actual = model(batch), loaded(batch)
    for name in expected:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(actual[name]),
            keras.ops.convert_to_numpy(expected[name]),
            rtol=1e-5,
            atol=1e-6,
        )


def test_missing_attribute_sends_no_gradient_to_its_branch(model):
    config = tiny_config()
    losses, loss_weights = build_losses(config)
    targets = {
        "colour": np.array([[1, 0, 0], [0, 0, 0]], "float32"),
        "occasion": -np.ones((2, 2), "float32"),  # missing on every row
    }
    branches = model.get_layer("branches")
    with tf.GradientTape() as tape:
        scores = model(images(), training=False)
        total = sum(
            loss_weights[name] * losses[name](targets[name], scores[name]) for name in targets
        )
    output_kernel = branches.weights[-2]  # [branches, hidden, values]
    stem_kernel = model.get_layer("stem_conv").weights[0]  # tiny_cnn's first conv
    kernel_gradient, stem_gradient = tape.gradient(total, [output_kernel, stem_kernel])
    assert np.all(kernel_gradient.numpy()[1] == 0.0)  # occasion is the second branch
    assert np.any(kernel_gradient.numpy()[0] != 0.0)
    assert np.any(stem_gradient.numpy() != 0.0)


@pytest.mark.parametrize(
    "settings, width, has_block",
    [
        ({"attention": "none"}, TINY_CNN_CHANNELS, False),
        ({"attention_width": None, "num_heads": 8, "norm": "post"}, TINY_CNN_CHANNELS, True),
    ],
)
def test_attention_settings(settings, width, has_block):
    built = build_model(tiny_config(settings, size=32))
    names = {layer.name for layer in built.layers}
    assert ("transformer" in names) == has_block
    assert "token_projection" not in names
    assert built.get_layer("embedding").output.shape == (None, width)
    assert built(images(size=32))["colour"].shape == (2, 3)


def test_portrait_image_size_gives_a_height_by_width_input_and_token_map():
    built = build_model(tiny_config(size=[128, 100]))
    assert tuple(built.input.shape) == (None, 128, 100, 3)
    # Stride 32 with "same" padding (as EfficientNetB0): ceil(128/32) x ceil(100/32) = 4 x 4.
    feature_map = built.get_layer(last_conv_layer_name(built)).output
    assert feature_map.shape == (None, 4, 4, TINY_CNN_CHANNELS)
    assert built.get_layer("tokens").output.shape == (None, 16, TINY_CNN_CHANNELS)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 128, 100, 3)).astype("float32")
    assert built(batch)["colour"].shape == (2, 3)


@pytest.mark.parametrize(
    "policy, compute_dtype", [(True, "float16"), ("mixed_bfloat16", "bfloat16")]
)
def test_mixed_precision_keeps_outputs_float32(policy, compute_dtype):
    with precision_policy(policy):
        built = build_model(tiny_config(size=32))
    assert keras.mixed_precision.global_policy().name == "float32"
    scores = built(images(size=32))
    assert built.get_layer("branches").compute_dtype == compute_dtype
    assert all(value.dtype == "float32" for value in scores.values())
    assert built.get_layer("embedding").output.dtype == "float32"


def test_precision_policy_is_restored_after_an_error():
    with pytest.raises(RuntimeError), precision_policy(True):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        raise RuntimeError("build failed")
    assert keras.mixed_precision.global_policy().name == "float32"
    with precision_policy(False):
        assert keras.mixed_precision.global_policy().name == "float32"


def test_backbone_weights_are_loaded_from_a_local_file(tmp_path):
    source = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    built = build_model(tiny_config({**EFFICIENTNET, "weights": str(path)}, size=32))
    for name in ("stem_conv", "top_conv"):
        np.testing.assert_array_equal(
            built.get_layer(name).get_weights()[0], source.get_layer(name).get_weights()[0]
        )


def test_output_stride_16_doubles_the_token_map_and_keeps_published_weights(tmp_path):
    # The stock EfficientNetB0 (stride 32) saves weights that load into the stride-16 variant:
    # the same shapes, so ImageNet weights work with either stride.
    source = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(64, 50, 3)
    )
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    stride_32 = build_model(tiny_config(EFFICIENTNET, size=[64, 50]))
    stride_16 = build_model(
        tiny_config({**EFFICIENTNET, "output_stride": 16, "weights": str(path)}, size=[64, 50])
    )
    assert stride_32.get_layer("tokens").output.shape == (None, 4, 1280)
    assert stride_16.get_layer("tokens").output.shape == (None, 16, 1280)
    assert stride_16.get_layer("block6a_dwconv").strides == (1, 1)
    np.testing.assert_array_equal(
        stride_16.get_layer("block6a_dwconv").get_weights()[0],
        source.get_layer("block6a_dwconv").get_weights()[0],
    )
    batch = np.random.default_rng(0).uniform(0, 255, (2, 64, 50, 3)).astype("float32")
    assert stride_16(batch)["colour"].shape == (2, 3)


@pytest.mark.parametrize("model_settings, key", [
    ({"output_stride": 8}, "model.output_stride"),
    ({"drop_connect_rate": 1.0}, "model.drop_connect_rate"),
    ({"output_bias": "mean"}, "model.output_bias"),
])
def test_bad_backbone_settings_name_the_key(model_settings, key):
    with pytest.raises(ValueError, match=key):
        tiny_config(model_settings, size=32)


def test_output_biases_start_at_the_training_priors():
    config = tiny_config(size=32)
    built = build_model(config)
    targets = {
        "colour": np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [-1, -1, -1]], "float32"),
        "occasion": np.array([[1, 1], [0, 1], [0, 0], [0, 1]], "float32"),
        "product_type": np.array([[1, 0], [1, 0], [0, 1], [1, 0]], "float32"),
    }
    set_output_biases_to_priors(built, config, targets)
    biases = keras.ops.convert_to_numpy(built.get_layer("branches").biases[-1])
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    order = [a.name for a in config.taxonomy.attributes]
    # colour: missing row left out, green never seen -> clipped at 1e-4
    np.testing.assert_allclose(
        biases[order.index("colour"), :3], logit(np.array([2 / 3, 1 / 3, 1e-4])), rtol=1e-5
    )
    np.testing.assert_allclose(
        biases[order.index("occasion"), :2], logit(np.array([1 / 4, 3 / 4])), rtol=1e-5
    )
    # With zero features the hidden layers add nothing but their biases (zeros at init).
    scores = built.get_layer("branches")(np.zeros((1, 32), "float32"))
    occasion = keras.ops.convert_to_numpy(keras.ops.sigmoid(scores[order.index("occasion")]))
    np.testing.assert_allclose(occasion[0], [1 / 4, 3 / 4], rtol=1e-4)


def test_missing_weights_file_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="model.weights"):
        build_model(tiny_config({"weights": str(tmp_path / "absent.weights.h5")}, size=32))


def test_attribute_clashing_with_a_backbone_layer_is_rejected():
    attributes = [{"name": "stem_conv", "values": ["a", "b"]}]
    with pytest.raises(ValueError, match="stem_conv"):
        build_model(tiny_config(size=32, attributes=attributes))


@pytest.mark.parametrize("path", CONFIGS, ids=[path.name for path in CONFIGS])
def test_every_config_builds_a_model(path):
    config = load_config(path, ["data.image_size=32", "model.weights=null"])
    assert config.model.backbone == "efficientnetb0"  # the shipped configs, as shipped
    built = build_model(config)
    names = [attribute.name for attribute in config.taxonomy.attributes]
    scores = built(images(size=32))
    assert sorted(scores) == sorted(names)
    for attribute in config.taxonomy.attributes:
        assert scores[attribute.name].shape == (2, len(attribute.values))


def test_batchnorm_momentum_setting_reaches_every_backbone_norm_and_round_trips(tmp_path):
    built = build_model(tiny_config(model={"batchnorm_momentum": 0.9}))
    norms = [layer for layer in built.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    built.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.get_layer(norms[0].name).momentum == 0.9


def test_tiny_backbone_weights_file_and_stride_16(tmp_path):
    source = build_model(tiny_config(size=[64, 50]))
    backbone = keras.Model(source.input, source.get_layer("top_activation").output)
    path = tmp_path / "tiny.weights.h5"
    backbone.save_weights(path)
    built = build_model(tiny_config({"output_stride": 16, "weights": str(path)}, size=[64, 50]))
    assert source.get_layer("tokens").output.shape == (None, 4, TINY_CNN_CHANNELS)
    assert built.get_layer("tokens").output.shape == (None, 16, TINY_CNN_CHANNELS)
    assert built.get_layer("stage4_conv").strides == (1, 1)
    for name in ("stem_conv", "stage4_conv", "top_conv"):
        np.testing.assert_array_equal(
            built.get_layer(name).get_weights()[0], source.get_layer(name).get_weights()[0]
        )
    with pytest.raises(ValueError, match="model.weights.*tiny_cnn"):
        build_model(tiny_config({"weights": "imagenet"}, size=32))


def test_unknown_backbone_lists_the_registered_ones():
    with pytest.raises(ConfigError, match=r"model.backbone: .*'efficientnetb0', 'tiny_cnn'"):
        tiny_config({"backbone": "resnet50"})
    with pytest.raises(ValueError, match=r"model.backbone: .*'efficientnetb0', 'tiny_cnn'"):
        build_backbone("resnet50", keras.Input((32, 32, 3)), None)


def test_a_registered_backbone_is_accepted_by_configs_and_built(monkeypatch):
    monkeypatch.setattr(backbones, "_BUILDERS", dict(backbones._BUILDERS))  # undone after

    @register_backbone("pooled_pixels")
    def pooled_pixels(image, weights, output_stride, drop_connect_rate):
        pooled = keras.layers.AveragePooling2D(output_stride, name="pooled_pixels")(image)
        return keras.Model(image, pooled)

    assert backbones.registered_backbones()[-1] == "pooled_pixels"
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("pooled_pixels", lambda *arguments: None)
    built = build_model(tiny_config({"backbone": "pooled_pixels", "attention": "none"}))
    assert last_conv_layer_name(built) == "pooled_pixels"
    assert built.get_layer("embedding").output.shape == (None, 3)
    assert built(images())["colour"].shape == (2, 3)


def test_colour_histogram_reaches_every_branch_and_leaves_the_embedding_alone(tmp_path):
    plain = build_model(tiny_config(size=32))
    model = build_model(tiny_config({"colour_histogram_bins": 8}, size=32))
    embedding = plain.get_layer(EMBEDDING_LAYER).output.shape
    assert model.get_layer(EMBEDDING_LAYER).output.shape == embedding
    assert model.get_layer("branch_features").output.shape[-1] == embedding[-1] + 3 * 8
    # Two images that differ only in their colours' positions have the same histograms: the
    # branches see the same colour statistics next to different embeddings.
    batch = images(count=2, size=32, seed=4)
    branch_input = keras.Model(model.input, model.get_layer("colour_norm").output)
    shuffled = batch.copy()
    shuffled[1] = np.random.default_rng(0).permutation(batch[1].reshape(-1, 3)).reshape(32, 32, 3)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(branch_input(shuffled))[1],
        keras.ops.convert_to_numpy(branch_input(batch))[1], rtol=1e-5, atol=1e-5,
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for name, expected in model(batch).items():
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(batch)[name]),
                                   keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-6)


def test_colour_histogram_bins_below_two_are_rejected():
    with pytest.raises(ConfigError, match="model.colour_histogram_bins"):
        tiny_config({"colour_histogram_bins": 1}, size=32)
    with pytest.raises(ConfigError, match=r"model.colour_histogram_attributes.*\['shade'\]"):
        tiny_config({"colour_histogram_bins": 8, "colour_histogram_attributes": ["shade"]})


def test_colour_histogram_reaches_only_the_chosen_attributes():
    model = build_model(tiny_config(
        {"colour_histogram_bins": 8, "colour_histogram_attributes": ["colour"]}, size=32))
    features = keras.Model(model.input, model.get_layer("branch_features").output)
    branches = model.get_layer("branches")
    batch = keras.ops.convert_to_numpy(features(images(count=3, size=32, seed=5)))
    changed = batch.copy()
    changed[:, -24:] += 1.0  # other colour statistics, the same embedding
    before, after = branches(batch), branches(changed)
    assert not np.allclose(keras.ops.convert_to_numpy(after[0]),
                           keras.ops.convert_to_numpy(before[0]))  # colour
    np.testing.assert_allclose(keras.ops.convert_to_numpy(after[1]),
                               keras.ops.convert_to_numpy(before[1]), rtol=1e-6)  # occasion
