"""Unlabelled Chinese text from the other tasks' training splits, for word2vec starting points.

Only training files are read (never a test file of any task), so a model started from these
vectors has seen no evaluation text. Paths are relative to the shared data folder
(``../shared/data``), the parent of every task's ``--data-dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from training.data.headline import read_titles, training_pairs
from training.data.ner import read_bio, read_cluener


def _ner_texts(shared: Path) -> list[str]:
    sentences = read_bio(shared / "ner/msra/train_pdnorm_minus_pd_devtest.txt") + read_cluener(shared / "ner/cluener2020/train.json")
    return [s.text for s in sentences]


def _headline_texts(shared: Path) -> list[str]:
    pairs = training_pairs(shared / "headline")
    return [p.source for p in pairs] + [p.title for p in pairs] + read_titles(shared / "headline/csl_titles_only/train_titles.tsv")


SOURCES: dict[str, Callable[[Path], list[str]]] = {
    "ner": _ner_texts,  # news sentences: MSRA (its People's-Daily-free training file) and CLUENER train
    "headline": _headline_texts,  # scientific abstracts and titles: the headline task's training pairs and CSL titles
}


def unlabelled_texts(shared: Path, sources: Sequence[str]) -> list[str]:
    """The texts of ``sources`` (keys of :data:`SOURCES`) under the shared data folder ``shared``."""
    return [text for source in sources for text in SOURCES[source](shared) if text.strip()]
