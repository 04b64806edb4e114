import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kattr.layers import ColourHistogram, GroupedBranches, TransformerBlock


def test_transformer_block_keeps_token_shape_and_mixes_tokens():
    block = TransformerBlock(width=16, num_heads=4, feedforward_width=32)
    tokens = np.random.default_rng(0).normal(size=(2, 5, 16)).astype("float32")
    output = keras.ops.convert_to_numpy(block(tokens))
    assert output.shape == (2, 5, 16)
    changed = tokens.copy()
    changed[:, 0] = np.random.default_rng(5).normal(size=(2, 16))
    # Self-attention: changing one token changes the others' outputs.
    other_tokens = keras.ops.convert_to_numpy(block(changed))[:, 1:]
    assert not np.allclose(other_tokens, output[:, 1:])


def test_post_norm_block_ends_normalised():
    block = TransformerBlock(width=8, num_heads=2, feedforward_width=16, norm="post")
    tokens = np.random.default_rng(1).normal(3.0, 5.0, size=(3, 4, 8)).astype("float32")
    output = keras.ops.convert_to_numpy(block(tokens))
    np.testing.assert_allclose(output.mean(axis=-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(output.std(axis=-1), 1.0, atol=1e-2)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"width": 10, "num_heads": 4}, "divisible"),
        ({"width": 8, "num_heads": 2, "norm": "middle"}, "norm"),
    ],
)
def test_transformer_block_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        TransformerBlock(**arguments)


def test_transformer_block_config_round_trip():
    block = TransformerBlock(width=8, num_heads=2, feedforward_width=24, dropout=0.2, norm="post")
    clone = TransformerBlock.from_config(block.get_config())
    for key in ("width", "num_heads", "feedforward_width", "dropout", "norm"):
        assert getattr(clone, key) == getattr(block, key)


def test_grouped_branches_equal_separate_dense_branches():
    output_sizes = [3, 1, 5]
    units = [6, 4]
    branches = GroupedBranches(units=units, output_sizes=output_sizes)
    features = np.random.default_rng(2).normal(size=(4, 7)).astype("float32")
    grouped = [keras.ops.convert_to_numpy(t) for t in branches(features)]

    first_kernel, first_bias = (keras.ops.convert_to_numpy(w) for w in branches.weights[:2])
    later = [keras.ops.convert_to_numpy(w) for w in branches.weights[2:]]
    for index, size in enumerate(output_sizes):
        # The same branch as three ordinary Dense layers holding its slice of the weights.
        separate = keras.Sequential([
            keras.Input((7,)),
            keras.layers.Dense(units[0], activation="relu"),
            keras.layers.Dense(units[1], activation="relu"),
            keras.layers.Dense(size),
        ])
        columns = slice(index * units[0], (index + 1) * units[0])
        separate.layers[0].set_weights([first_kernel[:, columns], first_bias[columns]])
        separate.layers[1].set_weights([later[0][index], later[1][index]])
        separate.layers[2].set_weights([later[2][index][:, :size], later[3][index][:size]])
        expected = keras.ops.convert_to_numpy(separate(features))
        np.testing.assert_allclose(grouped[index], expected, rtol=1e-5, atol=1e-5)


def test_grouped_branches_initialise_each_branch_like_its_own_dense():
    branches = GroupedBranches(units=[64, 32], output_sizes=[2] * 10)
    branches.build((None, 128))
    kernel = keras.ops.convert_to_numpy(branches.weights[2])  # [branches, 64, 32]
    limit = math.sqrt(6.0 / (64 + 32))  # Glorot uniform with ONE branch's fans
    assert kernel.shape == (10, 64, 32)
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.9 * limit


def test_grouped_branches_shapes_and_config():
    branches = GroupedBranches(units=[8], output_sizes=[2, 4], dropout=0.5)
    outputs = branches(np.zeros((3, 5), "float32"), training=True)
    assert [tuple(o.shape) for o in outputs] == [(3, 2), (3, 4)]
    clone = GroupedBranches.from_config(branches.get_config())
    assert (clone.units, clone.output_sizes, clone.dropout) == ([8], [2, 4], 0.5)


@pytest.mark.parametrize(
    "units, output_sizes", [([], [2]), ([4, 0], [2]), ([4], []), ([4], [3, 0])]
)
def test_grouped_branches_reject_empty_or_zero_sizes(units, output_sizes):
    with pytest.raises(ValueError, match="Received"):
        GroupedBranches(units=units, output_sizes=output_sizes)


def _image(pixels):
    """A [1, 1, len(pixels), 3] image of RGB pixels in [0, 255]."""
    return np.asarray([[pixels]], "float32")


def test_colour_histogram_counts_pixels_into_hue_saturation_and_value_bins():
    histogram = ColourHistogram(bins=4)
    # Pure red (hue 0), pure blue (hue 2/3 -> bin 2), white and black (hue meaningless).
    features = keras.ops.convert_to_numpy(
        histogram(_image([[255, 0, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]))
    )[0]
    hue, saturation, value = features[:4], features[4:8], features[8:]
    # Hue is weighted by saturation: the white and black pixels add nothing to it.
    np.testing.assert_allclose(hue, [0.25, 0.0, 0.25, 0.0])
    np.testing.assert_allclose(saturation, [0.5, 0.0, 0.0, 0.5])
    np.testing.assert_allclose(value, [0.25, 0.0, 0.0, 0.75])
    assert features.shape == (12,)


def test_colour_histogram_tells_colours_apart_whatever_their_position():
    histogram = ColourHistogram(bins=8)
    rng = np.random.default_rng(0)
    red = np.tile([200.0, 20.0, 20.0], (1, 16, 16, 1)).astype("float32")
    green = np.tile([20.0, 200.0, 20.0], (1, 16, 16, 1)).astype("float32")
    shuffled = rng.permutation(red.reshape(-1, 3)).reshape(red.shape)
    red_features = keras.ops.convert_to_numpy(histogram(red))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(histogram(shuffled)), red_features)
    assert not np.allclose(keras.ops.convert_to_numpy(histogram(green)), red_features)


def test_colour_histogram_sends_no_gradient_to_the_image_and_round_trips():
    histogram = ColourHistogram(bins=6, name="colour_histogram")
    image = keras.Variable(np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)), dtype="float32")
    with tf.GradientTape() as tape:
        total = keras.ops.sum(histogram(image))
    gradient = tape.gradient(total, image.value)
    assert gradient is None or not np.any(keras.ops.convert_to_numpy(gradient))
    restored = ColourHistogram.from_config(histogram.get_config())
    assert restored.bins == 6 and restored.compute_output_shape((2, 8, 8, 3)) == (2, 18)
    with pytest.raises(ValueError, match="bins"):
        ColourHistogram(bins=1)


def test_private_features_reach_only_their_branches():
    branches = GroupedBranches(units=[8, 4], output_sizes=[3, 2, 5], private_features=2,
                               private_branches=[1])
    features = np.random.default_rng(2).normal(size=(4, 6)).astype("float32")
    changed = features.copy()
    changed[:, -2:] = np.random.default_rng(3).normal(size=(4, 2))
    before = [keras.ops.convert_to_numpy(t) for t in branches(features)]
    after = [keras.ops.convert_to_numpy(t) for t in branches(changed)]
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6)
    np.testing.assert_allclose(after[2], before[2], rtol=1e-6)
    assert not np.allclose(after[1], before[1])
    shared_changed = features.copy()
    shared_changed[:, 0] += 1.0  # the shared features still reach every branch
    moved = [keras.ops.convert_to_numpy(t) for t in branches(shared_changed)]
    assert all(not np.allclose(m, b) for m, b in zip(moved, before, strict=True))
    restored = GroupedBranches.from_config(branches.get_config())
    assert (restored.private_features, restored.private_branches) == (2, [1])
    with pytest.raises(ValueError, match="private_branches"):
        GroupedBranches(units=[4], output_sizes=[3], private_features=1, private_branches=[1])
