"""Character-bigram keys, computed in the graph so serving needs no tokenizer."""

from __future__ import annotations

import keras
import tensorflow as tf

# One more than the largest Unicode code point: key = left * BASE + right is unique.
CODEPOINT_BASE = 0x110000


def bigram_keys(codepoints: tf.Tensor) -> tf.Tensor:
    """Code points ``[B, L]`` (0 = padding) → int64 keys ``[B, L, 2]``.

    Position ``i`` gets the bigrams ``(c[i-1], c[i])`` and ``(c[i], c[i+1])``; a
    missing neighbour counts as code point 0, and padded positions get key 0.
    """
    cp = tf.cast(codepoints, tf.int64)
    previous = tf.pad(cp[:, :-1], [[0, 0], [1, 0]])
    following = tf.pad(cp[:, 1:], [[0, 0], [0, 1]])
    keys = tf.stack([previous * CODEPOINT_BASE + cp, cp * CODEPOINT_BASE + following], axis=-1)
    return tf.where(cp[:, :, None] > 0, keys, tf.zeros_like(keys))


@keras.saving.register_keras_serializable(package="training")
class CharBigrams(keras.layers.Layer):
    """Keras wrapper around :func:`bigram_keys`."""

    def call(self, codepoints):
        return bigram_keys(codepoints)

    def compute_output_shape(self, input_shape):
        return (*input_shape, 2)
