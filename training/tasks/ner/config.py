"""What a NER tagger is and was trained with: its configuration, the corpora it names, its signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from training.data.ner import TaggedSentence, read_bio, read_cluener, read_weibo, relabel
from training.runs import RunConfig

TASK = "ner"
WARMUP_TEXT = "新华社北京电国务院总理李鹏今天会见了日本客人。"
SIGNATURE = {
    "inputs": {"text": "string [N], raw UTF-8"},
    "outputs": {
        "tags": "string [N, L], BIO, '' on padding",
        "lengths": "int32 [N]",
        "confidence": "float32 [N]",
        "entity_starts": "int32 [N, M], code point offsets, -1 on padding",
        "entity_ends": "int32 [N, M], exclusive, -1 on padding",
        "entity_types": "string [N, M], '' on padding",
        "entity_probabilities": "float32 [N, M], P(exactly this span with this type) under the CRF, -1 on padding",
    },
}


PER_LOC_ORG = ("LOC", "ORG", "PER")
CLUENER_TYPES = (
    "address", "book", "company", "game", "government", "movie", "name", "organization", "position", "scene",
)
# CLUENER's types read as the news models' three (MSRA tags ministries as ORG, scenic spots as
# LOC); games, films, books and job titles are no names of those kinds.
CLUENER_AS_PER_LOC_ORG = {
    "name": "PER", "address": "LOC", "scene": "LOC", "company": "ORG", "organization": "ORG", "government": "ORG",
}


def _cluener_as_per_loc_org(path: Path) -> list[TaggedSentence]:
    return relabel(read_cluener(path), CLUENER_AS_PER_LOC_ORG)


@dataclass(frozen=True)
class TestSet:
    """A labelled test split, and the entity types it is labelled with (after any relabelling)."""

    reader: Callable[[Path], list[TaggedSentence]]
    path: str
    types: tuple[str, ...]


# Every test split a model is scored on when its types are the model's (`ner evaluate`).
TEST_SETS = {
    "msra_test": TestSet(read_bio, "msra/test.txt", PER_LOC_ORG),
    "peoples_daily_test": TestSet(read_bio, "peoples_daily/example.test", PER_LOC_ORG),
    "weibo_test": TestSet(read_weibo, "weibo/test", PER_LOC_ORG),  # named mentions, GPE as LOC
    "cluener_dev_per_loc_org": TestSet(_cluener_as_per_loc_org, "cluener2020/dev.json", PER_LOC_ORG),
    "cluener_dev": TestSet(read_cluener, "cluener2020/dev.json", CLUENER_TYPES),
}


@dataclass(frozen=True)
class Source:
    """One labelled training source of a corpus, and the sentences of it held out for model
    selection and calibration."""

    reader: Callable[[Path], list[TaggedSentence]]
    train: str
    dev: str | None = None  # its own development split, held out whole; None: --held-out sentences of train
    hold_out: bool = True  # False: all of it is trained on, none held out (a source the model is not judged by)
    repeat: int = 1  # times each sentence is seen per epoch, so a small in-domain source is not drowned


@dataclass(frozen=True)
class Corpus:
    sources: tuple[Source, ...]
    test: str  # its own test split in TEST_SETS: the headline figure, also read in Traditional characters
    source: str


_MSRA = Source(read_bio, "msra/train_pdnorm_minus_pd_devtest.txt")
# Weibo's 1,350 posts seen four times an epoch beside MSRA's 41,000 sentences.
_WEIBO = Source(read_weibo, "weibo/train", dev="weibo/dev", repeat=4)

CORPORA = {
    "msra": Corpus(
        sources=(_MSRA,),
        test="msra_test",
        source="MSRA NER (SIGHAN 2006), train minus the People's Daily dev/test sentences; see ../shared/data/README.md",
    ),
    "cluener": Corpus(
        sources=(Source(read_cluener, "cluener2020/train.json"),),
        test="cluener_dev",
        source="CLUENER2020 (10 types); the official dev set is the test split",
    ),
    # News and social media.
    "msra_weibo": Corpus(
        sources=(_MSRA, _WEIBO),
        test="msra_test",
        source="MSRA NER train (minus People's Daily dev/test) and Weibo NER train (named mentions, GPE as LOC)",
    ),
    "msra_weibo_cluener": Corpus(
        sources=(
            _MSRA,
            _WEIBO,
            Source(_cluener_as_per_loc_org, "cluener2020/train.json", hold_out=False),
        ),
        test="msra_test",
        source="MSRA NER train (minus People's Daily dev/test), Weibo NER train (named mentions, GPE as LOC) and "
        "CLUENER2020 train read as PER/LOC/ORG (CLUENER_AS_PER_LOC_ORG)",
    ),
}


@dataclass
class Config(RunConfig):
    """Everything needed to rebuild the network: hyper-parameters plus vocabularies."""

    corpus: str = "msra"
    encoder: str = "bilstm"
    char_dim: int = 128
    bigram_dim: int = 64
    hidden: int = 192
    encoder_layers: int = 1  # stacked BiLSTMs
    dropout: float = 0.3
    char_dropout: float = 0.0  # word dropout on character ids (training only)
    bigram_dropout: float = 0.0  # ... and on bigram ids
    lexicon_max_word_length: int = 6  # 0: no jieba lexicon features
    fold_emoji: bool = False  # every emoji code point read as U+FFFD (EmojiFolding), as Weibo's posts have them
    tag_scheme: str = "BIO"  # what the CRF predicts; the outputs are always BIO
    constrained_crf: bool = True  # ill-formed tag sequences (O → I-PER) are impossible
    # Which sentences were held out (split_held_out): model selection chose on them, export
    # calibrates on them.
    held_out: int = 0
    seed: int = 13
    chars: list[int] = field(default_factory=list)
    bigrams: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
