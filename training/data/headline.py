"""Readers for the abstract → title pairs (CSL scientific papers), the news post → summary pairs
(LCSTS, as CLGE split it) and the title-only file; the training and test files of each genre."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

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
