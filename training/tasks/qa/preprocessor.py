"""From CMRC-style examples to the reader's training inputs: vocabularies and the word2vec corpus,
training windows with sentence crops and foreign passages, and the tf.data pipeline."""

from __future__ import annotations

import random
import sys
from collections import Counter
from itertools import accumulate
from typing import Sequence

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from app.tasks.qa.preprocessing import (
    Window,
    model_inputs,
    normalize_tokens,
    pad_tokens,
    question_tokens,
    segment,
    windows,
)
from app.tasks.text import codepoints_of
from training.data.qa import QAExample
from training.tasks.qa.config import Config


def corpus_texts(examples: Sequence[QAExample]) -> list[str]:
    """Each distinct passage once, then every question: the text vocabularies and word2vec read."""
    return sorted({e.context for e in examples}) + [e.question for e in examples]


def build_vocabularies(
    config: Config, examples: Sequence[QAExample], min_char_count: int, min_word_count: int, max_words: int
) -> list[list[str]]:
    """Fill ``config.chars`` and ``config.words`` from the examples' passages and questions; returns
    the normalised jieba tokens of each passage and question (the corpus for
    :func:`training.data.word2vec.word2vec_table`)."""
    texts = corpus_texts(examples)
    chars = Counter(codepoints_of(texts).flat_values.numpy().tolist())
    config.chars = [c for c, n in chars.most_common() if n >= min_char_count]
    sentences = normalized_sentences(texts)
    words = Counter(word for sentence in sentences for word in sentence)
    config.words = [w for w, n in words.most_common(max_words) if n >= min_word_count and w.strip()]
    return sentences


def normalized_sentences(texts: Sequence[str], desc: str = "jieba") -> list[list[str]]:
    """Each text's jieba tokens, normalised as the reader sees them (the word2vec corpus)."""
    segmented = [segment(text) for text in tqdm(texts, desc=desc, unit="text", file=sys.stderr)]
    flat = [w.decode() for w in normalize_tokens(tf.constant([t for tokens in segmented for t in tokens] or [""])).numpy()]
    return [flat[i - len(tokens) : i] for tokens, i in zip(segmented, accumulate(map(len, segmented)))]


SENTENCE_ENDS = ("。", "！", "？", "；", "!", "?", "\n")


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """Character ranges ``[start, end)`` of the sentences of ``text`` (each ends with one of
    :data:`SENTENCE_ENDS`, or the text does)."""
    bounds, first = [], 0
    for i, char in enumerate(text):
        if char in SENTENCE_ENDS:
            bounds.append((first, i + 1))
            first = i + 1
    if first < len(text):
        bounds.append((first, len(text)))
    return bounds


def sentence_crops(
    window: Window, start: int, end: int, rng: random.Random
) -> list[tuple[Window, int, int]]:
    """Short passages cut from a training window whose answer is ``window[start:end]``: the
    sentences holding the answer (give or take one on each side), and, when there is one, a
    stretch of one or two other sentences without it (answer offsets -1, -1).

    Training windows of a few hundred characters alone leave the reader unsure on short passages
    (a sentence or two, as in WebQA or most API calls); these crops show it some.
    """
    offsets = list(accumulate((len(t) for t in window.tokens), initial=0))
    sentences, first = [], 0  # token ranges [i, j)
    for i, token in enumerate(window.tokens):
        if token.endswith(SENTENCE_ENDS) or i == len(window.tokens) - 1:
            sentences.append((first, i + 1))
            first = i + 1
    holding = [k for k, (i, j) in enumerate(sentences) if offsets[j] > start and offsets[i] < end]
    if not holding:
        return []
    low = max(0, holding[0] - rng.randint(0, 1))
    high = min(len(sentences) - 1, holding[-1] + rng.randint(0, 1))
    i, j = sentences[low][0], sentences[high][1]
    crops = [(Window(window.offset + offsets[i], window.tokens[i:j]), start - offsets[i], end - offsets[i])]
    others = [k for k in range(len(sentences)) if k < holding[0] - 1 or k > holding[-1] + 1]
    if others:
        k = rng.choice(others)
        last = k + 1 if k + 1 < len(sentences) and k + 1 not in holding and rng.random() < 0.5 else k
        i, j = sentences[k][0], sentences[last][1]
        crops.append((Window(window.offset + offsets[i], window.tokens[i:j]), -1, -1))
    return crops


def training_windows(
    examples: Sequence[QAExample],
    config: Config,
    negative_rate: float,
    crop_rate: float,
    seed: int,
    crop_negative_rate: float | None = None,
) -> list[tuple[tuple[str, ...], Window, int, int]]:
    """(question tokens, window, answer start, answer end) per training window; -1, -1 for a window
    without the answer (kept with probability ``negative_rate``). With probability ``crop_rate`` a
    question also gets :func:`sentence_crops` of its first window holding the answer; the crop
    without the answer is kept with probability ``crop_negative_rate`` (default: ``negative_rate``).

    Keeping every answerless crop made most short windows answerless (64 % of those under 64
    characters against 31 % of full windows), and the reader learned that a short passage seldom
    holds the answer: it withheld 9 % of the answers to questions asked of the answer's sentence alone.
    """
    if crop_negative_rate is None:
        crop_negative_rate = negative_rate
    rng = random.Random(seed)
    segmented: dict[str, list[Window]] = {}
    result = []
    for example in tqdm(examples, desc="windows", unit="question", file=sys.stderr):
        if not example.answers:
            continue
        q_tokens = question_tokens(example.question, config.max_question_chars)
        if example.context not in segmented:
            segmented[example.context] = windows(segment(example.context), config.window_chars, config.window_stride)
        text, start = example.answers[0]
        end = start + len(text)
        cropped = False
        for window in segmented[example.context]:
            inside = window.offset <= start and end <= window.offset + window.length
            if inside and len(text) <= config.max_answer_chars:
                result.append((q_tokens, window, start - window.offset, end - window.offset))
                if not cropped and rng.random() < crop_rate:
                    crops = sentence_crops(window, start - window.offset, end - window.offset, rng)
                    result.extend(
                        (q_tokens, crop, s, e)
                        for crop, s, e in crops
                        # (no draw at rate 1: the same windows as before the option, for the same seed)
                        if s >= 0 or crop_negative_rate >= 1 or rng.random() < crop_negative_rate
                    )
                cropped = True
            elif not inside and rng.random() < negative_rate:
                result.append((q_tokens, window, -1, -1))
    return result


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1) if text[i].isalnum() and text[i + 1].isalnum()}


def _answer_sentence(example: QAExample, config: Config) -> tuple[Window, int, int] | None:
    """The sentence of ``example``'s passage holding its first answer, as a window of its own."""
    text, start = example.answers[0]
    end = start + len(text)
    for a, b in sentence_bounds(example.context):
        if a <= start and end <= b and b - a <= config.window_chars and len(text) <= config.max_answer_chars:
            return Window(0, tuple(segment(example.context[a:b]))), start - a, end - a
    return None


def _foreign_unit(sentence: str, context: str, config: Config, rng: random.Random) -> str:
    """The foreign sentence alone or, half the time, with its passage around it (up to a window)."""
    if rng.random() < 0.5:
        return sentence
    at = context.find(sentence)
    first = max(0, min(at - rng.randint(0, config.window_chars - len(sentence)), len(context) - config.window_chars))
    return context[first : first + config.window_chars]


def foreign_passage_windows(
    examples: Sequence[QAExample], config: Config, rate: float, seed: int, per_bigram: int = 20
) -> list[tuple[tuple[str, ...], Window, int, int]]:
    """Answerless training windows made of *other* questions' passages: for a share ``rate`` of
    the questions, the sentence sharing the most character bigrams with the question, but at most
    a third of them (among up to ``per_bigram`` drawn for each of its bigrams), never from the
    question's own passage and never holding one of its answers — alone or, half the time, with
    its passage around it. Each comes with the question's own answer sentence alone.

    WebQA's evidences always hold their answer, so a reader trained on them learns to answer from
    any passage: asked 中国的首都是哪里？ of 北京是中华人民共和国的首都。 and 上海是中国最大的
    经济中心。, it gave 上海. A sentence on the question's topic that does not answer it is the
    lesson that was missing; a random sentence would be too easy to tell apart. Foreign sentences
    alone taught the reader that a lone sentence seldom answers (长江流入哪个海？ over 黄河流入
    渤海。 and 长江流入东海。 found no 东海): the passages around them and the answer sentences
    alone keep length from telling the two apart.
    """
    rng = random.Random(seed)
    pool = sorted({
        (s, e.context)
        for e in examples
        for a, b in sentence_bounds(e.context)
        if 8 <= len(s := e.context[a:b].strip()) <= config.window_chars
    })
    pool_bigrams = [_bigrams(sentence) for sentence, _ in pool]
    holding: dict[str, list[int]] = {}
    for i, bigrams in enumerate(pool_bigrams):
        for bigram in bigrams:
            holding.setdefault(bigram, []).append(i)
    result = []
    for example in tqdm(examples, desc="foreign passages", unit="question", file=sys.stderr):
        if not example.answers or rng.random() >= rate:
            continue
        asked = _bigrams(example.question)
        drawn = {i for b in sorted(asked) if b in holding for i in rng.sample(holding[b], min(per_bigram, len(holding[b])))}
        answers = {t for t in (*example.references, *(t for t, _ in example.answers)) if t}
        # A sentence sharing most of the question's wording too often answers it in other words.
        most = max(1, len(asked) // 3)
        eligible = [
            (shared, i)
            for i in sorted(drawn)
            if pool[i][1] != example.context
            and not any(a in pool[i][0] for a in answers)
            and (shared := len(asked & pool_bigrams[i])) <= most
        ]
        if not eligible:
            continue
        sentence, context = pool[max(eligible, key=lambda pair: (pair[0], -len(pool[pair[1]][0])))[1]]
        unit = _foreign_unit(sentence, context, config, rng)
        if any(a in unit for a in answers):
            unit = sentence
        q_tokens = question_tokens(example.question, config.max_question_chars)
        result.append((q_tokens, Window(0, tuple(segment(unit))), -1, -1))
        if (own := _answer_sentence(example, config)) is not None:
            result.append((q_tokens, *own))
    return result


def training_dataset(
    rows, batch_size: int, shuffle: bool, soft: Sequence[np.ndarray] | None = None, soft_weight: float = 0.0
) -> tf.data.Dataset:
    """Training batches; with ``soft`` (:func:`teacher_probabilities`), each pointer's target is
    ``(1 - soft_weight)·one-hot + soft_weight·teacher`` — still a distribution over the window's
    positions and the null slot, so the softmax span loss is the cross-entropy to it."""
    questions = tf.constant(pad_tokens([r[0] for r in rows]))
    passages = tf.constant(pad_tokens([r[1].tokens for r in rows]))
    starts = tf.constant([r[2] for r in rows], tf.int32)
    ends = tf.constant([r[3] for r in rows], tf.int32)
    lengths = tf.constant([r[1].length for r in rows], tf.int32)
    # The inputs' character axis has one padding column beyond the longest window.
    teacher = np.zeros((len(rows), 1 + max((len(s) for s in soft), default=0) if soft is not None else 0, 2), np.float32)
    for i, probabilities in enumerate(soft or []):
        teacher[i, : len(probabilities)] = probabilities
    ds = tf.data.Dataset.from_tensor_slices((questions, passages, starts, ends, lengths, teacher))
    if shuffle:
        ds = ds.shuffle(len(rows), reshuffle_each_iteration=True)
    # Batches of similar window length: short crops do not pay for a full window's padding.
    ds = ds.bucket_by_sequence_length(
        lambda q, p, start, end, length, _: length, bucket_boundaries=[64, 128, 192], bucket_batch_sizes=[batch_size] * 4
    )

    # Nothing here branches on a tensor; converting it only made autograph warn about the closure.
    @tf.autograph.experimental.do_not_convert
    def features_and_targets(q, p, start, end, _, teacher):
        inputs = model_inputs(q, p)  # the character axis is as long as the batch's longest window
        positions = tf.range(tf.shape(inputs["passage_chars"])[1])[None, :]
        valid = inputs["passage_chars"] != 0
        targets = tf.stack(
            [tf.cast(positions == start[:, None], tf.float32), tf.cast(positions == end[:, None] - 1, tf.float32)], -1
        )
        if soft is not None:  # cut to the batch's longest window, as the inputs
            targets = (1 - soft_weight) * targets + soft_weight * teacher[:, : tf.shape(targets)[1]]
        return inputs, tf.where(valid[..., None], targets, -1.0)

    return ds.map(features_and_targets, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
