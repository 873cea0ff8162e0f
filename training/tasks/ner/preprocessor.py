"""What the tagger learns from: each corpus source's training and held-out sentences,
vocabularies built from the training sentences, and the ``tf.data`` pipeline (length buckets, unseen-character noise)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import tensorflow as tf

from app.tasks.text import codepoints_of
from training.data.ner import TaggedSentence
from training.data.tags import spans_to_tags
from training.layers import bigram_keys
from training.tasks.ner.config import Config, Corpus


def build_vocabularies(
    config: Config, sentences: list[TaggedSentence], min_char_count: int, min_bigram_count: int, max_bigrams: int
) -> None:
    """Fill the config's char, bigram and tag vocabularies from training sentences."""
    codepoints = codepoints_of([s.text for s in sentences])
    chars = Counter(codepoints.flat_values.numpy().tolist())
    keys = bigram_keys(codepoints.to_tensor()).numpy()
    bigrams = Counter(keys[keys > 0].tolist())
    config.chars = [c for c, n in chars.most_common() if n >= min_char_count]
    config.bigrams = [b for b, n in bigrams.most_common(max_bigrams) if n >= min_bigram_count]
    labels = sorted({tag[2:] for s in sentences for tag in s.tags if tag != "O"})
    prefixes = config.tag_scheme.replace("O", "")
    config.tags = ["O"] + [f"{prefix}-{label}" for label in labels for prefix in prefixes]


# A private-use code point: in no vocabulary or lexicon, so it looks like an unseen character.
UNSEEN_CODEPOINT = 0xE000


def training_dataset(
    sentences: list[TaggedSentence], config: Config, batch_size: int, shuffle: bool, unseen_rate: float = 0.0
) -> tf.data.Dataset:
    tag_index = {t: i for i, t in enumerate(config.tags)}
    codepoints = codepoints_of([s.text for s in sentences])
    tag_ids = tf.ragged.constant(
        [[tag_index[t] for t in spans_to_tags(len(s.text), s.spans, config.tag_scheme)] for s in sentences],
        dtype=tf.int32,
    )
    # tf.data cannot pad ragged elements, so slice each padded row back to its length.
    ds = tf.data.Dataset.from_tensor_slices((codepoints.to_tensor(), tag_ids.to_tensor(-1), codepoints.row_lengths()))
    ds = ds.map(lambda cp, tags, n: (cp[:n], tags[:n]))
    if unseen_rate > 0:
        # Replacing a few characters by an unseen one teaches the tagger to read names it has
        # never seen from their context instead of memorising the training names.
        ds = ds.map(
            lambda cp, tags: (tf.where(tf.random.uniform(tf.shape(cp)) < unseen_rate, UNSEEN_CODEPOINT, cp), tags)
        )
    if shuffle:
        ds = ds.shuffle(len(sentences), reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        lambda cp, _: tf.shape(cp)[0],
        bucket_boundaries=[16, 24, 32, 40, 48, 64, 80, 100, 128, 160],
        bucket_batch_sizes=[batch_size] * 11,
        padding_values=(0, -1),
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def split_held_out(sentences: list[TaggedSentence], held_out: int, seed: int) -> tuple[list, list]:
    shuffled = sentences[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[held_out:], shuffled[:held_out]


def read_corpus(corpus: Corpus, data_dir: Path, held_out: int, seed: int) -> tuple[list[TaggedSentence], dict[str, list[TaggedSentence]]]:
    """A corpus's training sentences (each source's repeated as it asks) and, by source, its
    held-out ones: a source's dev split, else ``held_out`` sentences of its train split."""
    train, held = [], {}
    for source in corpus.sources:
        sentences = source.reader(data_dir / source.train)
        if source.dev:
            held[source.dev] = source.reader(data_dir / source.dev)
        elif source.hold_out:
            sentences, held[source.train] = split_held_out(sentences, held_out, seed)
        train += sentences * source.repeat
    return train, held
