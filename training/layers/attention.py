"""Multi-head scaled dot-product attention of queries over a padded memory."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class MemoryAttention(keras.layers.Layer):
    """``softmax(q·kᵀ/√d)·v`` per head, with ``q = W_q·query`` and ``k, v`` projected from ``memory``.

    ``query [B, Tq, Dq]``, ``memory [B, Tk, Dm]``, ``memory_mask [B, Tk]`` (true = real)
    → context ``[B, Tq, units]`` (and, with ``return_weights``, the attention weights
    averaged over heads, ``[B, Tq, Tk]``). Padded memory positions get zero weight. Each query
    position attends independently, so the seq2seq decoder calls it on the whole target
    while training and on one step at a time while decoding, with the same result.
    """

    def __init__(self, num_heads: int = 4, key_dim: int = 64, units: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.units = units or num_heads * key_dim

    def build(self, query_shape, memory_shape, memory_mask_shape=None):
        inner = self.num_heads * self.key_dim
        self.query_projection = keras.layers.Dense(inner, use_bias=False, name="query")
        self.query_projection.build(query_shape)
        self.key_projection = keras.layers.Dense(inner, use_bias=False, name="key")
        self.key_projection.build(memory_shape)
        self.value_projection = keras.layers.Dense(inner, use_bias=False, name="value")
        self.value_projection.build(memory_shape)
        self.output_projection = keras.layers.Dense(self.units, name="output")
        self.output_projection.build((*query_shape[:-1], inner))

    def _heads(self, x):
        # [B, T, H·d] → [B, H, T, d]
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (batch, length, self.num_heads, self.key_dim)), (0, 2, 1, 3))

    def call(self, query, memory, memory_mask=None, return_weights: bool = False):
        q = self._heads(self.query_projection(query)) / math.sqrt(self.key_dim)
        k = self._heads(self.key_projection(memory))
        v = self._heads(self.value_projection(memory))
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # [B, H, Tq, Tk]
        if memory_mask is not None:
            keep = ops.expand_dims(ops.expand_dims(memory_mask, 1), 1)
            logits = ops.where(keep, logits, ops.full_like(logits, -1e9))
        weights = ops.softmax(logits, axis=-1)
        context = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))  # [B, Tq, H, d]
        batch, length = ops.shape(query)[0], ops.shape(query)[1]
        context = self.output_projection(ops.reshape(context, (batch, length, self.num_heads * self.key_dim)))
        if return_weights:  # the heads' mean attention over memory positions, [B, Tq, Tk]
            return context, ops.mean(weights, axis=1)
        return context

    def compute_output_shape(self, query_shape, memory_shape, memory_mask_shape=None):
        return (*query_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim, "units": self.units}
