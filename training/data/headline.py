"""Readers for the abstract → title pairs (CSL scientific papers), the news post → summary pairs
(LCSTS, as CLGE split it), the news lead → editor's headline pairs found in MSRA's People's Daily
text, and the title-only file; the training and test files of each genre."""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from training.data.ner import read_bio

csv.field_size_limit(1 << 24)  # some abstracts are CSV-quoted and long


@dataclass(frozen=True)
class Pair:
    source: str  # the abstract, or the news post
    title: str


def read_csl_json(path: str | Path) -> list[Pair]:
    """JSON lines ``{"id", "title", "abst"}`` (``csl_title_public``)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return _clean(Pair(row["abst"], row["title"]) for row in map(json.loads, filter(str.strip, lines)))


def read_clge_tsv(path: str | Path) -> list[Pair]:
    """``title \\t abstract``, some fields CSV-quoted (CLGE; LCSTS's ``summary \\t text`` alike)."""
    return _clean(Pair(row[1], row[0]) for row in _tsv(path))


def read_csl_ts_tsv(path: str | Path) -> list[Pair]:
    """``"to title" \\t abstract \\t title`` (the CSL benchmark's title task)."""
    return _clean(Pair(row[1], row[2]) for row in _tsv(path))


def read_titles(path: str | Path) -> list[str]:
    """The titles of ``"to category" \\t title \\t discipline`` (for pre-training the decoder)."""
    return [row[1].strip() for row in _tsv(path) if row[1].strip()]


# A People's Daily report opens with a dateline: "本报北京6月18日讯记者董洪亮报道：", "新华社北京5月24日电".
_DATELINE = re.compile(r"^(本报|新华社|中新社)[^，。：]{0,16}?(电|讯)([^，。：]{0,40}?记者[^，。：]{0,30}?报道：)?")
_HEADLINE_NOTE = re.compile(r"(（[^（）]{1,12}）)+$")  # "（附图片1张）", a column's name: not the headline's words
_SENTENCE_END = "。！？；…"
_LIST_ITEM = re.compile(r"^[0-9一二三四五六七八九十]+[、．.]")


def _looks_like_headline(sentence: str) -> bool:
    quoted = sentence.startswith("“") and sentence.endswith("”")  # someone's words closing a report
    return 4 <= len(sentence) <= 40 and sentence[-1] not in _SENTENCE_END and not _LIST_ITEM.match(sentence) and not quoted


@dataclass(frozen=True)
class _HeadedText:
    title: str
    source: str  # its first sentences, up to a length, the dateline cut
    dateline: bool  # a news report's, which opens with one


def _headed_texts(path: str | Path, max_chars: int) -> list[_HeadedText]:
    """Each headline in MSRA's NER text (People's Daily, 1998) with the text under it. The file
    holds each article's sentences in reverse order; a headline-like sentence (no final
    punctuation, 4–40 characters) followed by a dateline or a sentence of the text heads it."""
    sentences = [s.text for s in read_bio(path)][::-1]  # in reading order
    found = []
    for i, title in enumerate(sentences[:-1]):
        first = sentences[i + 1]
        dateline = _DATELINE.match(first)
        if not _looks_like_headline(title) or (_looks_like_headline(first) and not dateline):
            continue
        source = first[dateline.end():] if dateline else first
        for following in itertools.islice(sentences, i + 2, None):
            if _looks_like_headline(following) or len(source) + len(following) > max_chars:
                break
            source += following
        found.append(_HeadedText(_HEADLINE_NOTE.sub("", title).lstrip("○·"), source, bool(dateline)))
    return found


def read_peoples_daily_leads(path: str | Path, max_chars: int = 200) -> list[Pair]:
    """Editors' headlines over the opening sentences of their news reports (those opening with a
    dateline), as a reader would paste a paragraph: up to ``max_chars`` characters, without the
    dateline. A test set (``peoples_daily_test``)."""
    return _clean(Pair(t.source, t.title) for t in _headed_texts(path, max_chars) if t.dateline)


def peoples_daily_training_pairs(path: str | Path, max_chars: int = 200) -> list[Pair]:
    """The other headed texts of the same file (features, commentary, reports whose dateline was
    not kept) for training: those whose headline mostly uses the text's characters (a heading over
    unrelated text is a caption or a column's name) and share no headline or opening with a test pair."""
    headed = _headed_texts(path, max_chars)
    tested = {t.title for t in headed if t.dateline} | {t.source[:20] for t in headed if t.dateline}
    pairs = []
    for t in headed:
        if t.dateline or len(t.title) < 4 or t.title in tested or t.source[:20] in tested:
            continue
        in_text = set(t.source)
        if len(t.source) >= 15 and sum(c in in_text for c in t.title) >= 0.6 * len(t.title):
            pairs.append(Pair(t.source, t.title))
    return _clean(pairs)


def _tsv(path: str | Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def _clean(pairs) -> list[Pair]:
    stripped = (Pair(p.source.strip(), p.title.strip()) for p in pairs)
    return [p for p in stripped if p.source and p.title]


TRAIN_FILES = {
    "csl_title_public/csl_data.json": read_csl_json,
    "clge_csl/val.tsv": read_clge_tsv,
    "csl_ts/dev.tsv": read_csl_ts_tsv,
}
NEWS_TRAIN, NEWS_VAL = "clge_lcsts/train.tsv", "clge_lcsts/val.tsv"
PEOPLES_DAILY = "../ner/msra/train_pdnorm_minus_pd_devtest.txt"  # beside the headline folder
TEST_FILES = {
    "clge_csl_test": ("clge_csl/test.tsv", read_clge_tsv),
    "csl_ts_test": ("csl_ts/test.tsv", read_csl_ts_tsv),  # all CSL disciplines
    "lcsts_test": ("clge_lcsts/test.tsv", read_clge_tsv),  # news posts
    # news reports under their editors' headlines: no headline run trains on them (docs/headline.md)
    "peoples_daily_test": (PEOPLES_DAILY, read_peoples_daily_leads),
}
TITLES_FILE = "csl_titles_only/train_titles.tsv"


def training_pairs(data_dir: Path) -> list[Pair]:
    """Every paper training pair, in file order (never a test file)."""
    return [pair for name, read in TRAIN_FILES.items() for pair in read(data_dir / name)]


def news_pairs(data_dir: Path) -> tuple[list[Pair], list[Pair]]:
    """LCSTS's training and validation pairs; a training post that is also a validation or test
    post (CLGE's split repeats 58) is dropped from training."""
    val = read_clge_tsv(data_dir / NEWS_VAL)
    held = {p.source for p in val} | {p.source for p in read_clge_tsv(data_dir / TEST_FILES["lcsts_test"][0])}
    return [p for p in read_clge_tsv(data_dir / NEWS_TRAIN) if p.source not in held], val


def test_sets(data_dir: Path) -> dict[str, list[Pair]]:
    """Each test file ``data_dir`` holds."""
    return {name: read(data_dir / path) for name, (path, read) in TEST_FILES.items() if (data_dir / path).exists()}
