"""The seq2seq network: BiLSTM encoder, LSTM decoder with attention, the seed's copy prior and a
pointer mixture; a trained run loaded back."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from app.tasks.text import texts_to_codepoints
from training.layers.attention import MemoryAttention
from training.layers.copy_prior import CopyPrior
from training.layers.pointer import PointerMixture
from training.runs import load_best
from training.tasks.headline.config import END, END_KEY, PAD, START, START_KEY, Config


@keras.saving.register_keras_serializable(package="training")
class HeadlineSeq2Seq(keras.Model):
    """Source ids ``[B, S]`` and shifted target ids ``[B, T]`` → next-token log-probabilities ``[B, T, V]``.

    :meth:`encode` and :meth:`step` expose the same network one decoding step at a time,
    for :mod:`training.decoding`.
    """

    def __init__(self, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        vocab, units = config.vocab_size, config.decoder_units
        self.token_lookup = keras.layers.IntegerLookup(
            vocabulary=[START_KEY, END_KEY, *config.chars], mask_token=0, name="token_lookup"
        )
        self.embedding = keras.layers.Embedding(vocab, config.embedding_dim, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(config.dropout)
        self.encoder = keras.layers.Bidirectional(
            keras.layers.LSTM(config.encoder_units, return_sequences=True, name="lstm"), name="encoder"
        )
        self.decoder_init = keras.layers.Dense(2 * units, activation="tanh", name="decoder_init")
        self.decoder = keras.layers.LSTM(units, return_sequences=True, name="decoder")
        self.attention = MemoryAttention(config.attention_heads, config.attention_key_dim, name="attention")
        self.hidden = keras.layers.Dense(config.output_dim, activation="tanh", name="output_hidden")
        self.output_dropout = keras.layers.Dropout(config.dropout)
        self.logits = keras.layers.Dense(vocab, name="logits")
        self.copy_prior = CopyPrior(vocab, first_regular_id=4, name="copy_prior")
        self.pointer = PointerMixture(vocab, name="pointer") if config.pointer else None
        self._codepoints = tf.constant([0, 0, 0, 0, *config.chars], tf.int32)

    def encode_text(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """UTF-8 abstracts ``[N]`` → (source ids ``[N, ≤ max_source_chars + 1]``, length in characters ``[N]``).

        One padding column is always appended, so an empty text still has a time step.
        """
        codepoints = texts_to_codepoints(text, lowercase=False)
        ids = self.token_lookup(tf.cast(codepoints[:, : self.config.max_source_chars], tf.int64))
        ids = tf.pad(tf.cast(ids.to_tensor(default_value=PAD), tf.int32), [[0, 0], [0, 1]])
        return ids, tf.cast(codepoints.row_lengths(), tf.int32)

    def encode_title(self, titles: tf.Tensor) -> tf.Tensor:
        """UTF-8 titles ``[N]`` → ragged ids ``[N, (len)]``, no start or end token."""
        return tf.cast(self.token_lookup(tf.cast(texts_to_codepoints(titles, lowercase=False), tf.int64)), tf.int32)

    def decoder_ids(self, titles: tf.Tensor, width: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """UTF-8 titles ``[N]`` → teacher forcing's (decoder input ids, the start token first; target
        ids, the end token last), cut to ``max_title_tokens`` and padded to ``width`` (default: the longest)."""
        titles = self.encode_title(titles)[:, : self.config.max_title_tokens - 1]
        n = tf.shape(titles.row_lengths())[0]
        shape = None if width is None else [None, width]
        decoder_input = tf.concat([tf.fill([n, 1], START), titles], axis=1).to_tensor(PAD, shape=shape)
        target = tf.concat([titles, tf.fill([n, 1], END)], axis=1).to_tensor(PAD, shape=shape)
        return decoder_input, target

    def decode_tokens(self, tokens: tf.Tensor) -> tf.Tensor:
        """Token ids ``[..., T]`` → UTF-8 strings ``[...]`` (special tokens dropped)."""
        keep = tokens >= 4
        codepoints = tf.ragged.boolean_mask(tf.gather(self._codepoints, tokens), keep)
        return tf.strings.unicode_encode(codepoints, "UTF-8")

    def encode(self, source_ids, training: bool = False) -> dict:
        """The decoder's starting state: encoder memory and its mask, initial LSTM state, copy prior."""
        mask = ops.not_equal(source_ids, PAD)
        x = self.embedding_dropout(self.embedding(source_ids), training=training)
        memory = self.encoder(x, mask=mask, training=training)
        keep = ops.expand_dims(ops.cast(mask, memory.dtype), -1)
        pooled = ops.sum(memory * keep, axis=1) / ops.maximum(ops.sum(keep, axis=1), 1.0)
        h, c = ops.split(self.decoder_init(pooled), 2, axis=-1)
        return {
            "memory": memory, "memory_mask": mask, "source_ids": source_ids, "h": h, "c": c,
            "prior": self.copy_prior.prior(source_ids),
        }

    def _attend(self, decoded, state: dict, training: bool):
        """Attention over the source: the output features, the attention weights, the hidden layer."""
        context, weights = self.attention(decoded, state["memory"], state["memory_mask"], return_weights=True)
        features = ops.concatenate([decoded, context], axis=-1)
        return features, weights, self.output_dropout(self.hidden(features), training=training)

    def _next_token_log_probs(self, decoded, state: dict, training: bool):
        features, weights, hidden = self._attend(decoded, state, training)
        log_probs = self.copy_prior.mix(self.logits(hidden), state["prior"])
        if self.pointer is None:
            return log_probs
        return self.pointer(log_probs, weights, state["source_ids"], features)

    def _token_log_probs(self, decoded, state: dict, tokens):
        """:meth:`_next_token_log_probs` at ``tokens`` ``[B, T]`` only: the mixtures are taken at the
        tokens, so nothing larger than the logits ``[B, T, V]`` is held."""
        features, weights, hidden = self._attend(decoded, state, training=False)
        logits = self.logits(hidden)
        token_log_probs = tf.gather(logits, tokens, batch_dims=2) - ops.logsumexp(logits, axis=-1)
        log_probs = self.copy_prior.mix_at(token_log_probs, state["prior"], tokens)
        if self.pointer is None:
            return log_probs
        return self.pointer.mix_at(log_probs, weights, state["source_ids"], features, tokens)

    def _decode(self, source_ids, decoder_input_ids, training: bool):
        state = self.encode(source_ids, training)
        y = self.embedding_dropout(self.embedding(decoder_input_ids), training=training)
        return self.decoder(y, initial_state=[state["h"], state["c"]], training=training), state

    def call(self, inputs, training: bool = False):
        decoded, state = self._decode(*inputs, training)
        return self._next_token_log_probs(decoded, state, training)

    def score(self, source_ids, decoder_input_ids, target_ids):
        """Teacher forcing at inference: the log-probability ``[B, T]`` of each target token, as
        ``call`` gives it at that token."""
        decoded, state = self._decode(source_ids, decoder_input_ids, training=False)
        return self._token_log_probs(decoded, state, target_ids)

    def step(self, tokens, state: dict):
        """One decoding step: previous tokens ``[B]`` → log-probabilities ``[B, V]`` and the next state."""
        h, (h, c) = self.decoder.cell(self.embedding(tokens), [state["h"], state["c"]], training=False)
        log_probs = self._next_token_log_probs(ops.expand_dims(h, 1), state, training=False)[:, 0]
        return log_probs, {**state, "h": h, "c": c}

    def get_config(self):
        return {**super().get_config(), "config": asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        return cls(Config(**config.pop("config")), **config)


def build_model(config: Config, name: str = "headline_seq2seq") -> HeadlineSeq2Seq:
    """A built network; ``name`` prefixes its variables' paths (an export holding a reranker beside
    the generator tells them apart by it)."""
    model = HeadlineSeq2Seq(config, name=name)
    model((tf.ones([1, 4], tf.int32), tf.ones([1, 3], tf.int32)))  # create the weights
    model.encode_text(tf.constant([""]))  # and build the lookup, used outside call()
    return model


def load_trained(run_dir: Path, name: str = "headline_seq2seq") -> HeadlineSeq2Seq:
    return load_best(build_model(Config.of_run(run_dir), name), run_dir)
