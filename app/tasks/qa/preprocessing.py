"""Reading-comprehension preprocessing shared by training, evaluation and the service.

jieba has no TensorFlow op, so word segmentation and the cutting of long passages
into windows run here in Python. Everything after that runs in TensorFlow ops
(:func:`model_inputs`): the training input pipeline and the exported SavedModel
call the same function, so the exported signature takes jieba's tokens (strings,
``""`` as padding) and a TensorFlow Serving client only has to segment with jieba.

Offsets are Unicode code points into the caller's passage: tokens concatenate back
to the passage exactly, and normalisation maps one code point to one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import accumulate
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from app.tasks.chinese_script import simplify_text
from app.tasks.text import REPLACEMENT_CHARACTER, normalize_codepoints

# The padding token (bandit takes an empty string named *_TOKEN for a password).
PAD_TOKEN = ""  # nosec B105


def segment(text: str) -> list[str]:
    """jieba's tokens (its own bundled dictionary) of ``text`` read as Simplified: Traditional
    characters become Simplified first, one for one (:func:`simplify_text`, the table the graph's
    normalisation uses), since jieba's dictionary and the reader's vocabularies are Simplified.
    They concatenate to a string as long as ``text``, so offsets into them are offsets into it."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    simplified = simplify_text(text)
    tokens = jieba.lcut(simplified)
    if "".join(tokens) != simplified:  # jieba keeps every character; guard the offset arithmetic anyway
        return list(simplified)
    return tokens


@dataclass(frozen=True)
class Window:
    """A stretch of a passage: ``tokens`` start at code point ``offset`` of the passage."""

    offset: int
    tokens: tuple[str, ...]

    @property
    def length(self) -> int:
        return sum(len(t) for t in self.tokens)


def windows(tokens: Sequence[str], max_chars: int, stride: int) -> list[Window]:
    """Cut a tokenised passage into overlapping windows of at most ``max_chars`` code points.

    Windows start and end on token boundaries (a token longer than ``max_chars`` is
    split into characters) and each starts at the first token at least ``stride``
    characters after the previous start, so an answer of up to
    ``max_chars - stride - 2·(longest token) + 3`` characters lies whole inside at
    least one window.
    """
    pieces: list[str] = []
    for token in tokens:
        pieces.extend(token if len(token) > max_chars else [token])
    starts = list(accumulate((len(p) for p in pieces), initial=0))
    result: list[Window] = []
    first = 0
    while True:
        last = first
        while last < len(pieces) and starts[last + 1] - starts[first] <= max_chars:
            last += 1
        result.append(Window(starts[first], tuple(pieces[first:last])))
        if last >= len(pieces):
            return result
        target = starts[first] + stride
        first = next(i for i in range(first + 1, len(pieces) + 1) if starts[i] >= target or i == last)


def pad_tokens(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """Token lists → a ``[N, W]`` array of UTF-8 bytes padded with ``""`` (at least one column)."""
    width = max([1, *(len(r) for r in rows)])
    out = np.full((len(rows), width), b"", dtype=object)
    for i, row in enumerate(rows):
        out[i, : len(row)] = [t.encode("utf-8") for t in row]
    return out


def question_tokens(question: str, max_chars: int) -> tuple[str, ...]:
    """The question's jieba tokens, cut after at most ``max_chars`` characters (whole tokens)."""
    tokens, length = [], 0
    for token in segment(question):
        if length + len(token) > max_chars:
            break
        tokens.append(token)
        length += len(token)
    return tuple(tokens)


def prepare(
    question: str, passages: Sequence[str], window_chars: int, window_stride: int, max_question_chars: int
) -> tuple[tuple[str, ...], list[tuple[int, Window]]]:
    """Segment a question and its passages: the question's tokens (cut to ``max_question_chars``)
    and every ``(passage_index, window)`` the reader has to look at."""
    plan = [
        (index, window)
        for index, passage in enumerate(passages)
        for window in windows(segment(passage), window_chars, window_stride)
    ]
    return question_tokens(question, max_question_chars), plan


Spans = tuple[np.ndarray, np.ndarray, np.ndarray]  # a window's top starts, exclusive ends and scores


def read_windows(reader: Callable[..., dict], rows: Sequence[tuple[tuple[str, ...], Window]]) -> list[Spans]:
    """Call a reader with the signature's inputs for ``(question tokens, window)`` rows: the exported
    ``serving_default`` or its in-process twin. Returns each row's spans, in order."""
    out = reader(
        question_tokens=tf.constant(pad_tokens([q for q, _ in rows])),
        passage_tokens=tf.constant(pad_tokens([w.tokens for _, w in rows])),
    )
    return list(zip(out["start"].numpy(), out["end"].numpy(), out["score"].numpy()))


def _decode(tokens: tf.Tensor) -> tf.RaggedTensor:
    cps = tf.strings.unicode_decode(tokens, "UTF-8", errors="replace", replacement_char=REPLACEMENT_CHARACTER)
    return tf.ragged.map_flat_values(normalize_codepoints, cps)


def normalize_tokens(tokens: tf.Tensor) -> tf.Tensor:
    """Tokens normalised the way characters are (full-width → half-width, lower case, ...)."""
    return tf.strings.unicode_encode(_decode(tokens), "UTF-8")


def _chars_and_words(tokens: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Tokens ``[N, W]`` → normalised code points ``[N, L + 1]`` (0-padded) and, per character,
    the normalised word it belongs to ``[N, L + 1]`` (``""`` on padding)."""
    cps = _decode(tokens)  # [N, W, (c)]
    words = tf.strings.unicode_encode(cps, "UTF-8")  # [N, W]
    per_token = cps.merge_dims(0, 1)  # [N·W, (c)]
    chars = cps.merge_dims(1, 2)  # [N, (L)]
    word_of_char = tf.RaggedTensor.from_row_lengths(
        tf.repeat(tf.reshape(words, [-1]), per_token.row_lengths()), chars.row_lengths()
    )
    pad = [[0, 0], [0, 1]]  # one padding column, so the time axis is never empty
    return tf.pad(chars.to_tensor(0), pad), tf.pad(word_of_char.to_tensor(PAD_TOKEN), pad)


def model_inputs(question_tokens: tf.Tensor, passage_tokens: tf.Tensor) -> dict[str, tf.Tensor]:
    """The reader's inputs for question/passage-window pairs given as jieba tokens ``[N, W]``.

    Match features per passage character: does the character occur in the question,
    does its word occur among the question's words. (The soft match is computed in
    the model from learned embeddings.)
    """
    q_chars, q_words = _chars_and_words(question_tokens)
    p_chars, p_words = _chars_and_words(passage_tokens)
    char_match = tf.reduce_any(
        (p_chars[:, :, None] == q_chars[:, None, :]) & (q_chars[:, None, :] != 0), axis=-1
    )
    word_match = tf.reduce_any(
        (p_words[:, :, None] == q_words[:, None, :]) & (q_words[:, None, :] != PAD_TOKEN), axis=-1
    )
    match = tf.cast(tf.stack([char_match, word_match], axis=-1), tf.float32) * tf.cast(p_chars != 0, tf.float32)[..., None]
    return {
        "question_chars": q_chars,
        "question_words": q_words,
        "passage_chars": p_chars,
        "passage_words": p_words,
        "passage_match": match,
    }
