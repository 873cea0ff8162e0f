"""What the seq2seq learns from: the character vocabulary, the held-out split, and the padded
(source, decoder input) → target arrays."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from app.tasks.text import texts_to_codepoints
from training.data.headline import PEOPLES_DAILY, Pair, news_pairs, peoples_daily_training_pairs, training_pairs
from training.tasks.headline.config import START

if TYPE_CHECKING:
    from training.tasks.headline.backbone import HeadlineSeq2Seq


def character_vocabulary(texts: list[str], min_count: int) -> list[int]:
    """Code points occurring at least ``min_count`` times (normalised, case kept), most frequent first."""
    counts = np.bincount(texts_to_codepoints(tf.constant(texts), lowercase=False).flat_values.numpy())
    order = np.argsort(-counts, kind="stable")
    return [int(c) for c in order if counts[c] >= min_count and c > 0]


def exported_characters(version_dir: Path) -> list[int]:
    """An exported version's characters in its own numbering (ids 4 on), read off its
    ``next_token_log_probs`` signature. A run started from it keeps them, so the weights line up
    whatever characters the new run's pairs bring (those the version lacks read as unknown)."""
    signature = tf.saved_model.load(str(version_dir)).signatures["next_token_log_probs"]
    vocabulary = signature(text=tf.constant([""]), prefix=tf.constant([[START]], tf.int32))["vocabulary"].numpy()
    return [ord(token.decode()) for token in vocabulary[4:]]


def training_arrays(model: HeadlineSeq2Seq, pairs: list[Pair]) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """((source ids, decoder input ids), decoder target ids), padded; titles cut to ``max_title_tokens``."""
    source, _ = model.encode_text(tf.constant([p.source for p in pairs]))
    decoder_input, target = model.decoder_ids(tf.constant([p.title for p in pairs]), width=model.config.max_title_tokens)
    return (source.numpy(), decoder_input.numpy()), target.numpy()


def split_held_out(pairs: list[Pair], held_out: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    shuffled = pairs[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[held_out:], shuffled[:held_out]


def read_corpus(data_dir: Path, corpus: str, held_out: int, seed: int) -> tuple[dict[str, list[Pair]], dict[str, list[Pair]]]:
    """The training and the held-out pairs of ``corpus``, each by genre: ``held_out`` paper pairs
    drawn from training; with news, the first ``held_out`` of LCSTS's validation pairs; with
    reports, a quarter of People's Daily's headed texts (:func:`split_reports`)."""
    papers, papers_held_out = split_held_out(training_pairs(data_dir), held_out, seed)
    training, held = {"papers": papers}, {"papers": papers_held_out}
    if corpus in ("papers_news", "papers_news_reports"):
        training["news"], news_val = news_pairs(data_dir)
        held["news"] = news_val[:held_out]
    if corpus == "papers_news_reports":
        training["reports"], held["reports"] = split_reports(data_dir, seed)
    return training, held


def split_reports(data_dir: Path, seed: int) -> tuple[list[Pair], list[Pair]]:
    """People's Daily's headed texts (not its dated reports, a test set): three quarters to train
    on, a quarter held out."""
    reports = peoples_daily_training_pairs(data_dir / PEOPLES_DAILY)
    return split_held_out(reports, len(reports) // 4, seed)


def reverse_pairs(by_genre: dict[str, list[Pair]]) -> dict[str, list[Pair]]:
    """Each pair turned around: the headline becomes the source and the text the target."""
    return {genre: [Pair(p.title, p.source) for p in pairs] for genre, pairs in by_genre.items()}


def repeat_genres(training: dict[str, list[Pair]], repeats: dict[str, int]) -> list[Pair]:
    """One list of the training pairs, a genre's ``repeats`` times over (once if not named), so a
    small genre weighs more in each epoch without changing what the vocabulary counts."""
    return [pair for genre, pairs in training.items() for pair in pairs * repeats.get(genre, 1)]
