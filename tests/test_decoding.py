"""Greedy and beam search (``training.decoding``) on hand-built step functions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from training.decoding import beam_search, greedy_search, length_penalty

PAD, START, END = 0, 1, 2  # in these tests tokens 3.. are ordinary


def markov_step(table: np.ndarray):
    """A "model" whose next-token log-probabilities depend only on the previous token."""
    log_probs = tf.constant(np.log(table / table.sum(axis=1, keepdims=True)), tf.float32)

    def step(tokens, state):
        return tf.gather(log_probs, tokens), state

    return step, log_probs.numpy()


def _state(batch: int):
    # Decoders carry their encoder output in the state; a dummy one checks it is tiled and reordered.
    return {"memory": tf.reshape(tf.range(batch * 3, dtype=tf.float32), [batch, 3])}


def brute_force_best(log_probs: np.ndarray, max_length: int, alpha: float = 0.0):
    """The best complete hypothesis of at most ``max_length`` tokens (ending with END or cut at max_length)."""
    regular = range(3, len(log_probs))
    best = (-np.inf, None)
    for length in range(1, max_length + 1):
        for body in itertools.product(regular, repeat=length - 1):
            for last in (*regular, END) if length == max_length else (END,):
                sequence = (*body, last)
                if sequence == (END,):
                    continue  # may not end before the first token
                total, previous = 0.0, START
                for token in sequence:
                    total += log_probs[previous, token]
                    previous = token
                score = total / float(length_penalty(tf.constant(length), alpha))
                best = max(best, (score, sequence), key=lambda x: x[0])
    return best


def test_beam_search_finds_what_greedy_misses():
    # From START, token 3 looks best (0.6) but every continuation of it is poor; 4 then END wins.
    table = np.full((6, 6), 1e-6)
    table[START, [3, 4]] = [0.6, 0.4]
    table[3, [END, 5]] = [0.3, 0.3]
    table[3, 3] = 0.4
    table[4, END] = 0.99
    table[5, END] = 1.0
    table[3:, 3:] += 1e-3
    step, log_probs = markov_step(table)
    greedy = greedy_search(step, _state(1), 1, 4, START, END, PAD, banned_ids=(PAD, START))
    beam = beam_search(step, _state(1), 1, 3, 4, START, END, PAD, banned_ids=(PAD, START))
    assert greedy.tokens.numpy()[0, 0, :2].tolist() == [3, 3]
    assert beam.tokens.numpy()[0, 0].tolist() == [4, END, PAD, PAD]
    assert beam.lengths.numpy()[0, 0] == 2
    np.testing.assert_allclose(beam.log_probs.numpy()[0, 0], log_probs[START, 4] + log_probs[4, END], rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), alpha=st.sampled_from([0.0, 1.0]))
def test_wide_beam_equals_exhaustive_search(seed, alpha):
    """With a beam as wide as the number of prefixes, beam search is exhaustive."""
    rng = np.random.default_rng(seed)
    vocab, max_length = 5, 3  # 2 regular tokens + END: at most 3² live prefixes
    table = rng.random((vocab, vocab)) + 0.05
    step, log_probs = markov_step(table)
    beam = beam_search(step, _state(2), 2, 9, max_length, START, END, PAD, banned_ids=(PAD, START), alpha=alpha)
    if alpha == 0.0:  # with a length penalty, selection by log-probability may drop the best-ranked one
        best_score, best_sequence = brute_force_best(log_probs, max_length, alpha)
        for row in range(2):
            np.testing.assert_allclose(beam.scores.numpy()[row, 0], best_score, rtol=1e-4)
            tokens = beam.tokens.numpy()[row, 0][: beam.lengths.numpy()[row, 0]]
            assert tuple(tokens) == best_sequence
    scores = beam.scores.numpy()
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # ranked best first


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), block=st.booleans())
def test_beam_width_one_is_greedy(seed, block):
    rng = np.random.default_rng(seed)
    table = rng.random((7, 7)) ** 3 + 0.01
    step, _ = markov_step(table)
    greedy = greedy_search(step, _state(3), 3, 8, START, END, PAD, banned_ids=(PAD, START), block_repeated_trigrams=block)
    beam = beam_search(
        step, _state(3), 3, 1, 8, START, END, PAD, banned_ids=(PAD, START), block_repeated_trigrams=block
    )
    for name in ("tokens", "lengths"):
        np.testing.assert_array_equal(getattr(greedy, name).numpy(), getattr(beam, name).numpy())
    np.testing.assert_allclose(greedy.log_probs.numpy(), beam.log_probs.numpy(), rtol=1e-5)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_blocked_trigrams_never_repeat_and_padding_follows_the_end(search):
    table = np.full((5, 5), 1e-3)
    table[:, 3] = 1.0  # "3 3 3 3 ..." unless repeated trigrams are blocked
    table[:, END] = 0.01
    step, _ = markov_step(table)
    kwargs = dict(banned_ids=(PAD, START), block_repeated_trigrams=True)
    if search == "greedy":
        out = greedy_search(step, _state(1), 1, 10, START, END, PAD, **kwargs)
    else:
        out = beam_search(step, _state(1), 1, 3, 10, START, END, PAD, **kwargs)
    for tokens, length in zip(out.tokens.numpy()[0], out.lengths.numpy()[0]):
        sequence = tokens[:length].tolist()
        trigrams = [tuple(sequence[i : i + 3]) for i in range(len(sequence) - 2)]
        assert len(trigrams) == len(set(trigrams))
        assert (tokens[length:] == PAD).all()
        assert PAD not in sequence and START not in sequence


def test_inside_a_tf_function_with_dynamic_beam_width():
    step, _ = markov_step(np.random.default_rng(0).random((6, 6)) + 0.1)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def decode(beam_width, max_length):
        return beam_search(step, _state(2), 2, beam_width, max_length, START, END, PAD, banned_ids=(PAD, START)).tokens

    assert decode(tf.constant(3), tf.constant(5)).shape == (2, 3, 5)
    assert decode(tf.constant(1), tf.constant(2)).shape == (2, 1, 2)
