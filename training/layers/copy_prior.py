"""The copy prior of Su Jianlin's headline seq2seq: boost the tokens that occur in the source."""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class CopyPrior(keras.layers.Layer):
    """Mixes the decoder's distribution with a prior over the source's bag of tokens.

    The prior's logits are ``exp(log_scale)·bag + shift`` (one scale and one shift per
    vocabulary entry, learned), where ``bag`` is 1 for each token present in the source.
    The output distribution is the average of ``softmax(decoder logits)`` and
    ``softmax(prior logits)``: a cheap copy mechanism, and titles copy a lot.

    :meth:`prior` is computed once per source; :meth:`mix` per decoding step;
    ``call(logits, source_ids)`` does both. Token ids below ``first_regular_id``
    (padding, unknown, start, end) never count as present.
    """

    def __init__(self, vocab_size: int, first_regular_id: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.first_regular_id = first_regular_id
        # The weights' shape is known now, and prior() may be called before call().
        self.log_scale = self.add_weight(shape=(vocab_size,), initializer="zeros", name="log_scale")
        self.shift = self.add_weight(shape=(vocab_size,), initializer="zeros", name="shift")
        self.built = True

    def prior(self, source_ids):
        """Source token ids ``[B, T]`` → prior log-probabilities ``[B, V]``."""
        bag = tf.math.bincount(
            tf.cast(source_ids, tf.int32), minlength=self.vocab_size, maxlength=self.vocab_size, binary_output=True, axis=-1
        )
        regular = ops.cast(ops.arange(self.vocab_size) >= self.first_regular_id, "float32")
        bag = ops.cast(bag, "float32") * regular
        # Read outside call(), where Keras would cast weights stored as float16 (--float16-weights).
        log_scale, shift = (ops.cast(w, self.compute_dtype) for w in (self.log_scale, self.shift))
        return ops.log_softmax(ops.exp(log_scale) * bag + shift, axis=-1)

    def mix(self, logits, prior_log_probs):
        """Decoder logits ``[B, ..., V]`` and the prior ``[B, V]`` → log-probabilities ``[B, ..., V]``."""
        prior = prior_log_probs
        for _ in range(len(logits.shape) - 2):
            prior = ops.expand_dims(prior, 1)
        return ops.logaddexp(ops.log_softmax(logits, axis=-1), prior) - math.log(2.0)

    def mix_at(self, token_log_probs, prior_log_probs, tokens):
        """:meth:`mix` at given tokens only: the decoder's log-probabilities of ``tokens`` ``[B, T]``
        (its distribution normalised already) and the prior ``[B, V]`` → ``[B, T]``."""
        return ops.logaddexp(token_log_probs, tf.gather(prior_log_probs, tokens, batch_dims=1)) - math.log(2.0)

    def call(self, logits, source_ids):
        return self.mix(logits, self.prior(source_ids))

    def compute_output_shape(self, logits_shape, source_ids_shape):
        return logits_shape

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "first_regular_id": self.first_regular_id}
