"""A pointer (copy) distribution: attention over source positions, scattered onto the vocabulary."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class PointerMixture(keras.layers.Layer):
    """``p = g·p_generate + (1 − g)·p_copy`` (See et al., 2017, "Get To The Point").

    ``p_copy(v)`` is the attention weight on the source positions holding token ``v``, and the
    gate ``g = σ(w·features + b)`` is learned per decoding step. Inputs: generator
    log-probabilities ``[B, T, V]``, attention weights ``[B, T, S]``, source ids ``[B, S]`` and
    gate features ``[B, T, D]``; output: log-probabilities ``[B, T, V]``. Copying puts mass on
    the exact characters the decoder is looking at, which a softmax over thousands of
    characters learns only slowly from a few thousand titles.
    """

    def __init__(self, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def build(self, log_probs_shape, weights_shape, source_ids_shape, features_shape):
        self.gate = keras.layers.Dense(1, activation="sigmoid", name="gate")
        self.gate.build(features_shape)

    def call(self, log_probs, weights, source_ids, features):
        shape = tf.shape(weights)  # [B, T, S]
        batch, steps, length = shape[0], shape[1], shape[2]
        # One segment per (row, step, token): sum the weights of the positions holding each token.
        rows = tf.range(batch * steps)[:, None] * self.vocab_size
        tokens = tf.reshape(tf.repeat(tf.cast(source_ids, tf.int32)[:, None, :], steps, axis=1), [batch * steps, length])
        copy = tf.math.unsorted_segment_sum(
            tf.reshape(weights, [-1]), tf.reshape(rows + tokens, [-1]), batch * steps * self.vocab_size
        )
        copy = tf.reshape(copy, [batch, steps, self.vocab_size])
        gate = self.gate(features)
        return ops.log(gate * ops.exp(log_probs) + (1.0 - gate) * copy + 1e-9)

    def mix_at(self, token_log_probs, weights, source_ids, features, tokens):
        """:meth:`call` at given tokens only: log-probabilities of ``tokens`` ``[B, T]`` → ``[B, T]``,
        without the ``[B, T, V]`` scatter (a reranker scores long texts this way)."""
        holds = ops.cast(ops.equal(ops.expand_dims(ops.cast(source_ids, "int32"), 1), ops.expand_dims(tokens, -1)), weights.dtype)
        copy = ops.sum(weights * holds, axis=-1)  # [B, T]: the weight on the positions holding each token
        gate = ops.squeeze(self.gate(features), -1)
        return ops.log(gate * ops.exp(token_log_probs) + (1.0 - gate) * copy + 1e-9)

    def compute_output_shape(self, log_probs_shape, weights_shape=None, source_ids_shape=None, features_shape=None):
        return log_probs_shape

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}
