"""Skip-gram word2vec (gensim) starting points for embedding tables: over jieba words, characters
or character bigrams, from a task's training text and unlabelled text of the others
(:mod:`training.data.unlabelled`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from app.tasks.text import codepoints_of
from training.layers.char_bigrams import CODEPOINT_BASE


def char_sentences(texts: Sequence[str], lowercase: bool = True) -> list[list[str]]:
    """Each text's normalised code points as strings: the character word2vec corpus, in the
    units the models' ``char_lookup`` sees (the headline model keeps case: ``lowercase=False``)."""
    return [[str(c) for c in row] for row in codepoints_of(list(texts), lowercase).to_list()]


def bigram_sentences(texts: Sequence[str]) -> list[list[str]]:
    """Each text's character bigrams as strings, in the keys the taggers' ``bigram_lookup`` sees
    (:func:`training.layers.bigram_keys`: the bigram starting at each character, the last paired
    with 0). Computed row by row: padding every text to the longest would take gigabytes."""
    rows = codepoints_of(list(texts)).to_list()
    return [[str(a * CODEPOINT_BASE + b) for a, b in zip(row, [*row[1:], 0])] for row in rows]


def word2vec_table(
    sentences: Sequence[Sequence[str]], words: Sequence[str], dim: int, epochs: int, seed: int
) -> np.ndarray:
    """Skip-gram word2vec (gensim) over ``sentences``, as rows of an embedding behind a lookup
    layer: row 0 is the padding token, row 1 out-of-vocabulary, row ``i + 2`` is ``words[i]``.
    Tokens word2vec did not keep (whitespace) start from small random vectors like Keras' own
    initialiser. The tokens may be jieba words or single characters (:func:`char_sentences`)."""
    from gensim.models import Word2Vec  # a training extra: the service never imports it

    model = Word2Vec(
        [list(s) for s in sentences], vector_size=dim, window=5, min_count=1, sg=1, negative=5,
        workers=2, epochs=epochs, seed=seed,
    )
    table = np.random.default_rng(seed).uniform(-0.05, 0.05, (len(words) + 2, dim)).astype("float32")
    for i, word in enumerate(words):
        if word in model.wv.key_to_index:
            table[i + 2] = model.wv[word]
    return table
