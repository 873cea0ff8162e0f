"""Greedy and beam search as TensorFlow ops (``tf.while_loop``), for decoding inside a SavedModel.

Both work on any autoregressive model given as a step function::

    step(tokens [B], state) -> (log_probs [B, V], new_state)

where ``state`` is a nest of tensors whose first axis is the batch (a model's
encoder output rides along in it unchanged). A hypothesis ends with its first
``end_id`` (which its length counts, as the length penalty does); ``pad_id``
fills the positions after it. Ids in ``banned_ids`` are never produced.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import tensorflow as tf

Step = Callable[[tf.Tensor, object], tuple[tf.Tensor, object]]
NEG_INF = -1e9


class Hypotheses(NamedTuple):
    tokens: tf.Tensor  # int32 [B, K, T]: pad_id after the end token
    lengths: tf.Tensor  # int32 [B, K]: tokens up to and including the end token
    log_probs: tf.Tensor  # float32 [B, K]: sum of the token log-probabilities
    scores: tf.Tensor  # float32 [B, K]: log_probs / length_penalty(lengths); sorted, best first


def length_penalty(lengths: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """GNMT's ``((5 + length) / 6) ** alpha``; alpha 0 ranks by plain log-probability."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def _repeated_trigram_mask(tokens: tf.Tensor, t: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """``[B, V]`` true where the next token would repeat a trigram already in ``tokens[:, :t]``."""
    if_short = tf.zeros([tf.shape(tokens)[0], vocab_size], tf.bool)

    def mask():
        prefix = tokens[:, :t]
        last_two = prefix[:, -2:]
        # Trigrams (a, b, c) of the prefix whose (a, b) equals the last two tokens ban c.
        same = (prefix[:, :-2] == last_two[:, :1]) & (prefix[:, 1:-1] == last_two[:, 1:])
        banned = tf.one_hot(prefix[:, 2:], vocab_size, on_value=True, off_value=False) & same[:, :, None]
        return tf.reduce_any(banned, axis=1)

    return tf.cond(t >= 3, mask, lambda: if_short)


def _restrict(
    log_probs: tf.Tensor,
    tokens: tf.Tensor,
    t: tf.Tensor,
    finished: tf.Tensor,
    end_id: int,
    banned_ids: Sequence[int],
    block_repeated_trigrams: tf.Tensor,
) -> tf.Tensor:
    """The step's log-probabilities with the disallowed continuations at -inf.

    A finished sequence may only continue with ``end_id`` at no cost; an unfinished one
    may not produce a banned id, may not end before its first token, and (optionally) may
    not repeat a trigram.
    """
    vocab_size = log_probs.shape[-1] or tf.shape(log_probs)[-1]
    ids = tf.range(vocab_size)
    banned = tf.reduce_any(ids[:, None] == tf.constant(list(banned_ids), tf.int32)[None, :], axis=1) if banned_ids else ids < 0
    banned = tf.logical_or(banned[None, :], tf.logical_and(tf.equal(t, 0), tf.equal(ids, end_id))[None, :])
    banned = tf.logical_or(
        banned, tf.logical_and(block_repeated_trigrams, _repeated_trigram_mask(tokens, t, vocab_size))
    )
    log_probs = tf.where(banned, NEG_INF, log_probs)
    only_end = tf.where(ids == end_id, 0.0, NEG_INF)[None, :]
    return tf.where(finished[:, None], only_end, log_probs)


def greedy_search(
    step: Step,
    state,
    batch_size: tf.Tensor,
    max_length: tf.Tensor,
    start_id: int,
    end_id: int,
    pad_id: int = 0,
    banned_ids: Sequence[int] = (),
    block_repeated_trigrams: tf.Tensor | bool = False,
) -> Hypotheses:
    """The most probable token at every step; one hypothesis per input (``K = 1``)."""
    block = tf.convert_to_tensor(block_repeated_trigrams, tf.bool)
    max_length = tf.convert_to_tensor(max_length, tf.int32)

    def body(t, last, state, tokens, finished, lengths, total):
        log_probs, state = step(last, state)
        log_probs = _restrict(log_probs, tokens, t, finished, end_id, banned_ids, block)
        token = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        total += tf.gather(log_probs, token, batch_dims=1)
        lengths += tf.cast(~finished, tf.int32)
        tokens = _write(tokens, t, tf.where(finished, pad_id, token))
        return t + 1, token, state, tokens, finished | (token == end_id), lengths, total

    _, _, _, tokens, _, lengths, total = tf.while_loop(
        _unfinished(max_length),
        body,
        _initial_loop_vars(state, batch_size, max_length, start_id),
        shape_invariants=_invariants(state),
    )
    return Hypotheses(tokens[:, None], lengths[:, None], total[:, None], total[:, None])


def beam_search(
    step: Step,
    state,
    batch_size: tf.Tensor,
    beam_width: tf.Tensor,
    max_length: tf.Tensor,
    start_id: int,
    end_id: int,
    pad_id: int = 0,
    banned_ids: Sequence[int] = (),
    alpha: tf.Tensor | float = 0.0,
    block_repeated_trigrams: tf.Tensor | bool = False,
) -> Hypotheses:
    """Keep the ``beam_width`` most probable prefixes at every step; return them ranked.

    A finished hypothesis keeps its slot (it only extends with ``end_id`` at no cost),
    so selection at each step is by log-probability, and the length penalty ``alpha``
    ranks the final ``beam_width`` hypotheses. ``beam_width`` 1 is greedy search.
    """
    block = tf.convert_to_tensor(block_repeated_trigrams, tf.bool)
    max_length = tf.convert_to_tensor(max_length, tf.int32)
    k = tf.convert_to_tensor(beam_width, tf.int32)
    alpha = tf.convert_to_tensor(alpha, tf.float32)
    rows = batch_size * k
    # Every input's beams are consecutive rows: [b0k0, b0k1, ..., b1k0, ...].
    state = tf.nest.map_structure(lambda s: tf.repeat(s, k, axis=0), state)
    # Only beam 0 is live at the start, so the first step does not pick k copies of one token.
    first = tf.tile(tf.concat([[0.0], tf.fill([k - 1], NEG_INF)], 0), [batch_size])

    def body(t, last, state, tokens, finished, lengths, total):
        log_probs, state = step(last, state)
        log_probs = _restrict(log_probs, tokens, t, finished, end_id, banned_ids, block)
        vocab_size = tf.shape(log_probs)[-1]
        candidates = tf.reshape(total[:, None] + log_probs, [batch_size, k * vocab_size])
        best, index = tf.math.top_k(candidates, k)  # ties: the lower index, i.e. the earlier beam
        parent = tf.reshape(index // vocab_size + tf.range(batch_size)[:, None] * k, [rows])
        token = tf.reshape(index % vocab_size, [rows])
        state = tf.nest.map_structure(lambda s: tf.gather(s, parent), state)
        parent_finished = tf.gather(finished, parent)
        tokens = _write(tf.gather(tokens, parent), t, tf.where(parent_finished, pad_id, token))
        lengths = tf.gather(lengths, parent) + tf.cast(~parent_finished, tf.int32)
        return t + 1, token, state, tokens, parent_finished | (token == end_id), lengths, tf.reshape(best, [rows])

    t0, last, state, tokens, finished, lengths, _ = _initial_loop_vars(state, rows, max_length, start_id)
    _, _, _, tokens, _, lengths, total = tf.while_loop(
        _unfinished(max_length),
        body,
        (t0, last, state, tokens, finished, lengths, first),
        shape_invariants=_invariants(state),
    )
    total = tf.reshape(total, [batch_size, k])
    lengths = tf.reshape(lengths, [batch_size, k])
    scores = total / length_penalty(lengths, alpha)
    order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
    tokens = tf.reshape(tokens, [batch_size, k, -1])
    pick = lambda x: tf.gather(x, order, batch_dims=1)  # noqa: E731
    return Hypotheses(pick(tokens), pick(lengths), pick(total), pick(scores))


def _unfinished(max_length: tf.Tensor) -> Callable:
    """The loop condition: steps left and some hypothesis not ended."""
    return lambda t, last, state, tokens, finished, *_: (t < max_length) & ~tf.reduce_all(finished)


def _write(tokens: tf.Tensor, t: tf.Tensor, column: tf.Tensor) -> tf.Tensor:
    at_t = tf.one_hot(t, tf.shape(tokens)[1], on_value=1, off_value=0, dtype=tf.int32)[None, :]
    return tokens * (1 - at_t) + column[:, None] * at_t


def _initial_loop_vars(state, rows, max_length, start_id):
    return (
        tf.constant(0),
        tf.fill([rows], start_id),
        state,
        tf.zeros([rows, max_length], tf.int32),
        tf.zeros([rows], tf.bool),
        tf.zeros([rows], tf.int32),
        tf.zeros([rows], tf.float32),
    )


def _invariants(state):
    vector = tf.TensorShape([None])
    return (
        tf.TensorShape([]),
        vector,
        tf.nest.map_structure(lambda s: tf.TensorShape([None, *s.shape[1:]]), state),
        tf.TensorShape([None, None]),
        vector,
        vector,
        vector,
    )
