"""Unlabelled Chinese text from the other tasks' training splits, for word2vec starting points.

Only training files are read (never a test file of any task), so a model started from these
vectors has seen no evaluation text. Paths are relative to the shared data folder
(``../shared/data``), the parent of every task's ``--data-dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from training.data.headline import news_pairs, read_titles, training_pairs
from training.data.ner import read_bio, read_cluener
from training.data.qa import read_squad, read_webqa_train


def _ner_texts(shared: Path) -> list[str]:
    sentences = read_bio(shared / "ner/msra/train_pdnorm_minus_pd_devtest.txt") + read_cluener(shared / "ner/cluener2020/train.json")
    return [s.text for s in sentences]


def _headline_texts(shared: Path) -> list[str]:
    pairs = training_pairs(shared / "headline")
    return [p.source for p in pairs] + [p.title for p in pairs] + read_titles(shared / "headline/csl_titles_only/train_titles.tsv")


def _qa_texts(shared: Path) -> list[str]:
    examples = read_squad(shared / "qa/cmrc2018/cmrc2018_train.json") + read_webqa_train(
        shared / "qa/webqa_train/me_test_minus_webqa_sample.json"
    )
    return sorted({e.context for e in examples}) + [e.question for e in examples]


def _news_post_texts(shared: Path) -> list[str]:
    """LCSTS's training posts (Weibo posts of news organisations), without those CLGE's split
    repeats in its validation and test files."""
    return [p.source for p in news_pairs(shared / "headline")[0]]


SOURCES: dict[str, Callable[[Path], list[str]]] = {
    "ner": _ner_texts,  # news sentences: MSRA (its People's-Daily-free training file) and CLUENER train
    "headline": _headline_texts,  # scientific abstracts and titles: the headline task's training pairs and CSL titles
    "qa": _qa_texts,  # encyclopaedia passages and questions: CMRC 2018 train, WebQA's annotated questions
    "news_posts": _news_post_texts,  # Weibo posts of news organisations: LCSTS train
}


def unlabelled_texts(shared: Path, sources: Sequence[str]) -> list[str]:
    """The texts of ``sources`` (keys of :data:`SOURCES`) under the shared data folder ``shared``."""
    return [text for source in sources for text in SOURCES[source](shared) if text.strip()]
