"""The loss and the searches: the sequence NLL, beam search and greedy search in the graph (the
exported signatures), and a batched driver over texts."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import tensorflow as tf
from keras import ops

from app.tasks.batches import map_by_length
from training.decoding import beam_search, greedy_search
from training.tasks.headline.backbone import HeadlineSeq2Seq
from training.tasks.headline.config import END, NEVER_GENERATED, PAD, START
from training.tasks.headline.ensemble import HeadlineEnsemble
from training.tasks.headline.reranker import rerank, text_log_probs

R = TypeVar("R")


def sequence_loss(label_smoothing: float = 0.0) -> Callable:
    """Mean negative log-likelihood per target token, padding excluded, with optional label smoothing."""

    def loss(target_ids, log_probs):
        # Keras hands a [B, T] target to a [B, T, V] prediction as [B, T, 1]: undo that.
        target_ids = ops.reshape(ops.cast(target_ids, "int32"), ops.shape(log_probs)[:-1])
        nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(target_ids, -1), axis=-1), -1)
        if label_smoothing:
            nll = (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(target_ids, PAD), nll.dtype)
        return ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)

    return loss


def make_generator(
    model: HeadlineSeq2Seq | HeadlineEnsemble, reranker: HeadlineSeq2Seq | None = None, reranker_weight: float = 0.0
):
    """The serving function: abstracts → ranked headlines, beam search in the graph (see ``SIGNATURE``)
    over one network or an ensemble's mixture; with a ``reranker`` (a reverse model), the final
    beam is reordered by :mod:`.reranker`."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text"),
            tf.TensorSpec([], tf.int32, name="beam_width"),
            tf.TensorSpec([], tf.int32, name="max_length"),
            tf.TensorSpec([], tf.float32, name="length_penalty"),
            tf.TensorSpec([], tf.bool, name="block_repeated_trigrams"),
        ]
    )
    def generate(text, beam_width, max_length, length_penalty, block_repeated_trigrams):
        source_ids, source_chars = model.encode_text(text)
        hypotheses = beam_search(
            model.step, model.encode(source_ids), tf.shape(text)[0], beam_width, max_length,
            START, END, PAD, NEVER_GENERATED, length_penalty, block_repeated_trigrams,
        )
        if reranker is not None:
            hypotheses = rerank(hypotheses, text_log_probs(reranker, text, hypotheses.tokens), reranker_weight)
        return {
            "headlines": model.decode_tokens(hypotheses.tokens),
            "log_probs": hypotheses.log_probs,
            "scores": hypotheses.scores,
            "truncated": source_chars > model.config.max_source_chars,
        }

    return generate


def make_next_token_scorer(model: HeadlineSeq2Seq | HeadlineEnsemble):
    """Abstracts and decoder prefixes → next-token log-probabilities at every prefix position.

    Exported as the ``next_token_log_probs`` signature: everything a client needs to run
    its own search outside the graph (``bench/headline_decode.py`` does, the seed's way).
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([None, None], tf.int32, name="prefix")])
    def next_token_log_probs(text, prefix):
        source_ids, _ = model.encode_text(text)
        vocabulary = model.decode_tokens(tf.range(model.config.vocab_size)[:, None])
        return {"log_probs": model((source_ids, prefix), training=False), "vocabulary": vocabulary}

    return next_token_log_probs


def make_greedy(model: HeadlineSeq2Seq):
    """Abstracts → greedy headlines ``[N]``, in the graph; the held-out metric uses it."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)])
    def greedy(text, max_length):
        source_ids, _ = model.encode_text(text)
        hypotheses = greedy_search(
            model.step, model.encode(source_ids), tf.shape(text)[0], max_length, START, END, PAD, NEVER_GENERATED
        )
        return model.decode_tokens(hypotheses.tokens[:, 0])

    return greedy


def generate_all(
    generate: Callable[[list[str]], Sequence[R]], texts: list[str], batch_size: int = 64, desc: str | None = None
) -> list[R]:
    """``generate``'s result (a headline, an answer) for every text, in batches of similar length."""
    return map_by_length(generate, texts, [len(t) for t in texts], batch_size, desc)
