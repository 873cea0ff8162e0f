"""Readers for the NER corpora: character-per-line BIO files, CLUENER2020 JSON lines and Weibo NER's
aligned ``seq.in``/``seq.out`` files; and relabelling of one corpus's types onto another's."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from training.data.tags import Span, as_bio, bio_to_spans, spans_to_tags


@dataclass(frozen=True)
class TaggedSentence:
    text: str
    tags: tuple[str, ...]

    @property
    def spans(self) -> list[Span]:
        return bio_to_spans(self.tags)


def read_bio(path: str | Path) -> list[TaggedSentence]:
    """``char TAG`` per line, a blank line between sentences (MSRA, People's Daily)."""
    sentences, chars, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                if chars:
                    sentences.append(TaggedSentence("".join(chars), tuple(tags)))
                    chars, tags = [], []
                continue
            if len(parts) != 2 or len(parts[0]) != 1:
                raise ValueError(f"{path}:{line_no}: expected 'CHAR TAG', got {line!r}")
            chars.append(parts[0])
            tags.append(parts[1])
    if chars:
        sentences.append(TaggedSentence("".join(chars), tuple(tags)))
    return sentences


def read_cluener(path: str | Path) -> list[TaggedSentence]:
    """CLUENER2020 JSON lines: ``{"text", "label": {type: {entity: [[start, end_inclusive]]}}}``."""
    sentences = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            spans = [
                Span(label, start, end + 1)
                for label, entities in record.get("label", {}).items()
                for positions in entities.values()
                for start, end in positions
            ]
            text = record["text"]
            sentences.append(TaggedSentence(text, tuple(spans_to_tags(len(text), sorted(spans, key=lambda s: s.start)))))
    return sentences


def read_weibo(folder: str | Path) -> list[TaggedSentence]:
    """Weibo NER (Peng & Dredze 2015): ``seq.in`` space-separated characters, ``seq.out`` aligned
    BIOES tags of PER/LOC/GPE/ORG × NAM (a name) / NOM (a nominal, 女人, 老师). The named mentions
    are kept, with GPE read as LOC (as MSRA tags countries and cities); nominals are not names."""
    folder = Path(folder)
    lines = zip(
        (folder / "seq.in").read_text(encoding="utf-8").splitlines(),
        (folder / "seq.out").read_text(encoding="utf-8").splitlines(),
    )
    sentences = []
    for line_no, (chars, tags) in enumerate(lines, 1):
        # An emoji the corpus lost to encoding is one token of two U+FFFD: one character here.
        chars, tags = [c[0] for c in chars.split()], tags.split()
        if len(chars) != len(tags):
            raise ValueError(f"{folder}: line {line_no}: characters and tags do not align")
        spans = [
            Span({"GPE": "LOC"}.get(label, label), s.start, s.end)
            for s in bio_to_spans(as_bio(t) for t in tags)
            for label, _, mention in [s.label.partition(".")]
            if mention == "NAM"
        ]
        sentences.append(TaggedSentence("".join(chars), tuple(spans_to_tags(len(chars), spans))))
    return sentences


def relabel(sentences: list[TaggedSentence], mapping: dict[str, str]) -> list[TaggedSentence]:
    """The sentences with each entity's type replaced through ``mapping``; types it leaves out
    are no longer entities."""
    return [
        TaggedSentence(s.text, tuple(spans_to_tags(len(s.text), [Span(mapping[x.label], x.start, x.end) for x in s.spans if x.label in mapping])))
        for s in sentences
    ]


_CLAUSE_END = re.compile(r"(?<=[。！？；!?;])")


def split_long(sentence: TaggedSentence, max_chars: int) -> list[TaggedSentence]:
    """Cut a long training sentence after clause-ending punctuation, never inside an entity.

    Pieces are packed greedily up to ``max_chars``; a clause longer than that is
    kept whole (it is rare, and cutting inside it could split an entity).
    """
    if len(sentence.text) <= max_chars:
        return [sentence]
    inside = {i for s in sentence.spans for i in range(s.start + 1, s.end)}
    cuts = [m.start() for m in _CLAUSE_END.finditer(sentence.text) if m.start() not in inside]
    pieces, start, prev = [], 0, 0
    for cut in cuts + [len(sentence.text)]:
        if cut - start > max_chars and prev > start:
            pieces.append((start, prev))
            start = prev
        prev = cut
    pieces.append((start, len(sentence.text)))
    return [
        TaggedSentence(sentence.text[a:b], sentence.tags[a:b]) for a, b in pieces if b > a
    ]


def join_entity_lists(sentence: TaggedSentence, separators: str = "、") -> TaggedSentence | None:
    """The sentence with every separator between two entities removed, or ``None`` if it has none.

    In MSRA's character files the spaces that separated the names of a list were dropped, so
    names often follow one another directly ("李鹏乔石李瑞环"), yet the training split has few
    such runs. Joining its ``、``-separated entity lists shows the tagger where one name ends
    and the next begins when nothing marks it.
    """
    spans = sentence.spans  # in text order
    drop = {
        left.end
        for left, right in zip(spans, spans[1:])
        if right.start == left.end + 1 and sentence.text[left.end] in separators
    }
    if not drop:
        return None
    keep = [i for i in range(len(sentence.text)) if i not in drop]
    return TaggedSentence("".join(sentence.text[i] for i in keep), tuple(sentence.tags[i] for i in keep))
