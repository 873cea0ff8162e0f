"""Readers for the abstract → title pairs (CSL scientific papers), the news post → summary pairs
(LCSTS, as CLGE split it), the news lead → editor's headline pairs found in MSRA's People's Daily
text, and the title-only file; the training and test files of each genre."""

from __future__ import annotations

import csv
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


def read_peoples_daily_leads(path: str | Path, max_chars: int = 200) -> list[Pair]:
    """Editors' headlines over the opening sentences of their reports, found in MSRA's NER text
    (People's Daily, 1998), which holds the sentences of each article in reverse order: a
    headline-like sentence (no final punctuation, 4–40 characters) whose next sentence in the
    article opens with a dateline starts a pair. The source is the report's first sentences, up
    to ``max_chars`` characters, without the dateline, as a reader would paste a paragraph."""
    sentences = [s.text for s in read_bio(path)][::-1]  # in reading order
    pairs = []
    for i, title in enumerate(sentences[:-1]):
        lead = _DATELINE.match(sentences[i + 1])
        if not (_looks_like_headline(title) and lead and lead.end() < len(sentences[i + 1])):
            continue
        source = sentences[i + 1][lead.end():]
        for following in sentences[i + 2:]:
            if _looks_like_headline(following) or len(source) + len(following) > max_chars:
                break
            source += following
        pairs.append(Pair(source, _HEADLINE_NOTE.sub("", title).lstrip("○·")))
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
TEST_FILES = {
    "clge_csl_test": ("clge_csl/test.tsv", read_clge_tsv),
    "csl_ts_test": ("csl_ts/test.tsv", read_csl_ts_tsv),  # all CSL disciplines
    "lcsts_test": ("clge_lcsts/test.tsv", read_clge_tsv),  # news posts
    # news reports under their editors' headlines: no headline run trains on them (docs/headline.md)
    "peoples_daily_test": ("../ner/msra/train_pdnorm_minus_pd_devtest.txt", read_peoples_daily_leads),
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
