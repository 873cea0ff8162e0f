"""DGCNN reader layers: shapes, masking (padding never changes real positions), config round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.layers import AttentionPooling1D, GatedDilatedResidualConv1D, SinusoidalPositionEmbedding

rng = np.random.default_rng(0)


def _padded_pair(length: int = 7, extra: int = 5, dim: int = 6):
    """The same real sequence alone and followed by random junk that the mask marks as padding."""
    real = rng.normal(size=(1, length, dim)).astype("float32")
    junk = rng.normal(size=(1, extra, dim)).astype("float32")
    padded = np.concatenate([real, junk], axis=1)
    mask = np.array([[True] * length + [False] * extra])
    return real, np.ones((1, length), bool), padded, mask


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_gated_conv_ignores_padding_and_zeroes_it(dilation):
    layer = GatedDilatedResidualConv1D(kernel_size=3, dilation_rate=dilation)
    real, real_mask, padded, mask = _padded_pair()
    alone = layer(real, mask=real_mask).numpy()
    with_padding = layer(padded, mask=mask).numpy()
    assert with_padding.shape == padded.shape
    np.testing.assert_allclose(with_padding[:, :7], alone, rtol=1e-5, atol=1e-6)
    assert not with_padding[:, 7:].any()


def test_gated_conv_is_a_gated_residual():
    """With the gate shut (large negative gate bias) the block passes its input through."""
    layer = GatedDilatedResidualConv1D()
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    layer(x)
    kernel, bias = layer.conv.get_weights()
    bias[4:] = -50.0  # the second half of the channels is the gate
    layer.conv.set_weights([kernel, bias])
    np.testing.assert_allclose(layer(x).numpy(), x, atol=1e-5)


def test_attention_pooling_ignores_padding():
    layer = AttentionPooling1D(8)
    real, real_mask, padded, mask = _padded_pair()
    alone = layer(real, mask=real_mask).numpy()
    np.testing.assert_allclose(layer(padded, mask=mask).numpy(), alone, rtol=1e-5, atol=1e-6)
    assert alone.shape == (1, 6)


def test_attention_pooling_of_a_constant_sequence_is_that_constant():
    x = np.tile(rng.normal(size=(1, 1, 6)).astype("float32"), (1, 9, 1))
    np.testing.assert_allclose(AttentionPooling1D(4)(x).numpy(), x[:, 0], rtol=1e-5)


def test_position_embedding_adds_sin_cos_and_works_for_odd_sizes():
    for dim in (6, 7):
        x = np.zeros((2, 5, dim), "float32")
        out = SinusoidalPositionEmbedding()(x).numpy()
        assert out.shape == x.shape
        np.testing.assert_allclose(out[0, 0, 0::2], 0.0, atol=1e-6)  # sin(0)
        np.testing.assert_allclose(out[0, 0, 1::2], 1.0, atol=1e-6)  # cos(0)
        np.testing.assert_allclose(out[0, 3, 0], np.sin(3.0), rtol=1e-5)
        np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize(
    "layer",
    [GatedDilatedResidualConv1D(5, 2, 0.1, name="g"), AttentionPooling1D(12, name="a"), SinusoidalPositionEmbedding(name="p")],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_layers_serialise_inside_a_model(tmp_path):
    inputs = keras.Input((None, 8))
    x = SinusoidalPositionEmbedding()(inputs)
    x = GatedDilatedResidualConv1D(3, 2)(x)
    outputs = AttentionPooling1D(4)(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5)
