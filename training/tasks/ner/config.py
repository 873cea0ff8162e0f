"""What a NER tagger is and was trained with: its configuration, the corpora it names, its signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from training.data.ner import TaggedSentence, read_bio, read_cluener
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


@dataclass(frozen=True)
class Corpus:
    reader: Callable[[Path], list[TaggedSentence]]
    train: str
    tests: dict[str, str]
    source: str


CORPORA = {
    "msra": Corpus(
        reader=read_bio,
        train="msra/train_pdnorm_minus_pd_devtest.txt",
        tests={"msra_test": "msra/test.txt", "peoples_daily_test": "peoples_daily/example.test"},
        source="MSRA NER (SIGHAN 2006), train minus the People's Daily dev/test sentences; see ../shared/data/README.md",
    ),
    "cluener": Corpus(
        reader=read_cluener,
        train="cluener2020/train.json",
        tests={"cluener_dev": "cluener2020/dev.json"},
        source="CLUENER2020 (10 types); the official dev set is the test split",
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
    tag_scheme: str = "BIO"  # what the CRF predicts; the outputs are always BIO
    constrained_crf: bool = True  # ill-formed tag sequences (O → I-PER) are impossible
    chars: list[int] = field(default_factory=list)
    bigrams: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
