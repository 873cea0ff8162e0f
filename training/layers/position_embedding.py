"""Sinusoidal position embedding (Vaswani et al., 2017), added to its input."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """``x + PE`` with ``PE[t, 2i] = sin(t / 10000^(2i/D))`` and ``PE[t, 2i+1] = cos(...)``.

    Fixed rather than learned, so it has no maximum length: passage windows of any
    size at serving time get positions the model has seen the pattern of.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x):
        length, dim = ops.shape(x)[1], x.shape[-1]
        positions = ops.cast(ops.arange(length), x.dtype)[:, None]  # [L, 1]
        frequencies = ops.exp(ops.cast(ops.arange(0, dim, 2), x.dtype) * (-math.log(10000.0) / dim))  # [D/2]
        angles = positions * frequencies[None, :]
        # Interleave sin and cos: [L, D/2, 2] → [L, D].
        table = ops.reshape(ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1), (length, -1))[:, :dim]
        return x + table[None]

    def compute_output_shape(self, input_shape):
        return input_shape
