"""Readers for the reading-comprehension sets: SQuAD-style JSON (CMRC 2018, DRCD, DuReader-robust),
WebQA's annotated questions (training) and evaluation sample, and the hand-written questions kept
with this module."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class QAExample:
    """A question about one passage; ``answers`` are ``(text, start)`` pairs found in it, the first one
    for training; ``references`` every answer text as the set gives it, found or not (what the
    official CMRC 2018 script grades against; empty: the texts of ``answers``)."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    references: tuple[str, ...] = ()


def read_squad(path: str | Path, convert: Callable[[str], str] | None = None) -> list[QAExample]:
    """SQuAD v1 JSON. An answer whose ``answer_start`` does not point at its text is moved to the
    nearest occurrence of the text, or dropped when the context does not contain it.

    ``convert`` rewrites every text first (e.g. Traditional → Simplified Chinese for DRCD).
    """
    convert = convert or (lambda text: text)
    examples = []
    for article in json.loads(Path(path).read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            context = convert(paragraph["context"])
            for qa in paragraph["qas"]:
                answers = []
                for answer in qa.get("answers", []):
                    text, start = convert(answer["text"]).strip(), int(answer["answer_start"])
                    if text and context[start : start + len(text)] != text:
                        found = [i for i in _occurrences(context, text)]
                        start = min(found, key=lambda i: abs(i - start)) if found else -1
                    if text and start >= 0:
                        answers.append((text, start))
                references = tuple(convert(answer["text"]) for answer in qa.get("answers", []))
                examples.append(QAExample(qa["id"], convert(qa["question"]).strip(), context, tuple(answers), references))
    return examples


def read_webqa_train(path: str | Path, convert: Callable[[str], str] | None = None) -> list[QAExample]:
    """WebQA's annotated questions as ``{id: {question, evidences: {id: {answer: [...], evidence}}}}``:
    one example per evidence passage, the answer located at its first occurrence (WebQA gives no
    offsets); an evidence without its answer in the text is dropped."""
    convert = convert or (lambda text: text)
    examples = []
    for record in json.loads(Path(path).read_text(encoding="utf-8")).values():
        question = convert(record["question"]).strip()
        for evidence_id, evidence in record["evidences"].items():
            context = convert(evidence["evidence"])
            texts = [convert(a).strip() for a in evidence.get("answer", []) if a.strip() and a.strip() != "no_answer"]
            answers = tuple((t, context.find(t)) for t in texts if t in context)
            if answers:
                examples.append(QAExample(evidence_id, question, context, answers, tuple(texts)))
    return examples


def read_training_file(path: str | Path, convert: Callable[[str], str] | None = None) -> list[QAExample]:
    """A training set in either layout: SQuAD-style (``{"data": ...}``) or WebQA's annotated JSON."""
    with open(path, encoding="utf-8") as f:
        squad = '"data"' in f.read(64)
    return read_squad(path, convert) if squad else read_webqa_train(path, convert)


def _occurrences(text: str, sub: str):
    start = text.find(sub)
    while start >= 0:
        yield start
        start = text.find(sub, start + 1)


@dataclass(frozen=True)
class MultiPassageQuestion:
    """A WebQA question with its evidence passages and golden answers (pooled over the passages)."""

    id: str
    question: str
    passages: tuple[str, ...]
    answers: tuple[str, ...]


def read_webqa(path: str | Path) -> list[MultiPassageQuestion]:
    """The WebQA evaluation sample: gzipped JSON lines, word-tokenised; tokens are joined back
    into text (the service segments text itself). ``no_answer`` golden answers are skipped."""
    questions = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            passages, answers = [], []
            for evidence in record["evidences"]:
                passages.append("".join(evidence["evidence_tokens"]))
                for golden in evidence.get("golden_answers", []):
                    text = "".join(golden)
                    if text and text != "no_answer" and text not in answers:
                        answers.append(text)
            questions.append(
                MultiPassageQuestion(record["q_key"], "".join(record["question_tokens"]), tuple(passages), tuple(answers))
            )
    return questions


HANDWRITTEN = Path(__file__).with_name("handwritten_qa.json")


def read_handwritten(path: str | Path = HANDWRITTEN) -> list[MultiPassageQuestion]:
    """Questions written for this project as people type them into the API (short passages: a
    sentence or two of encyclopaedia, notices, product blurbs), with every acceptable answer. A
    check of what users get, never trained or chosen on."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        MultiPassageQuestion(f"handwritten-{i}", r["question"], tuple(r["passages"]), tuple(r["answers"]))
        for i, r in enumerate(records)
    ]
