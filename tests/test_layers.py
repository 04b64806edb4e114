import math

import keras
import numpy as np
import pytest

from kattr.layers import GroupedBranches, TransformerBlock


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
