"""Attention pooling: a sequence ``[B, L, D]`` → one vector ``[B, D]``."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class AttentionPooling1D(keras.layers.Layer):
    """A learned weighted average over time: ``softmax(w·tanh(W·x_t))`` weights, padding excluded.

    DGCNN summarises the question this way before broadcasting it over the passage.
    """

    def __init__(self, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True

    def build(self, input_shape):
        self.hidden = keras.layers.Dense(self.units, activation="tanh", name="hidden")
        self.hidden.build(input_shape)
        self.score = keras.layers.Dense(1, use_bias=False, name="score")
        self.score.build((*input_shape[:-1], self.units))

    def call(self, x, mask=None):
        logits = ops.squeeze(self.score(self.hidden(x)), -1)  # [B, L]
        if mask is not None:
            logits = ops.where(mask, logits, ops.full_like(logits, -1e9))
        weights = ops.softmax(logits, axis=-1)
        return ops.sum(x * ops.expand_dims(weights, -1), axis=1)

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}
