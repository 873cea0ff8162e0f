"""CMRC-style grading of answers: EM/F1 of best spans, dev's two halves, answered shares."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from app.tasks.qa.answers import Answer
from training.data.qa import QAExample, read_squad
from training.metrics import cmrc_em, cmrc_f1, cmrc_scores
from training.tasks.qa.config import TESTS, Config
from training.tasks.qa.head import WindowPredictor, answer_all
from training.tasks.qa.preprocessor import sentence_bounds


def answer_in_context(
    predict: WindowPredictor, config: Config, examples: Sequence[QAExample], desc: str | None = None
) -> list[list[Answer]]:
    """The best answers to SQuAD-style examples, each read in its own context passage."""
    return answer_all(predict, config, [e.question for e in examples], [[e.context] for e in examples], desc=desc)


def best_text(answers: Sequence[Answer]) -> str:
    return answers[0].text if answers else ""


def best_span_scores(examples: Sequence[QAExample], answers: Sequence[Sequence[Answer]]) -> dict:
    """CMRC EM/F1 of each example's best answer against its references."""
    return cmrc_scores([best_text(a) for a in answers], [references(e) for e in examples])


def best_scores(answers: Sequence[Sequence[Answer]]) -> np.ndarray:
    """Each question's best-span score (0 when no span was found)."""
    return np.array([a[0].score if a else 0.0 for a in answers])


def references(example: QAExample) -> list[str]:
    """What an answer is graded against: every reference the set gives, as the official script does."""
    return list(example.references) or [text for text, _ in example.answers]


def dev_halves(examples: Sequence[QAExample]) -> tuple[list[int], list[int]]:
    """CMRC dev split by passage, alternately, as indices: the first half fits the probability
    calibration and picks the answer threshold, the second is where both are measured.

    Trial cannot fit them: it has one reference answer per question where dev has three, so the
    same answers are "right" half as often there (EM 22 % against 42 % for the bundled reader).
    """
    order = {context: i for i, context in enumerate(dict.fromkeys(e.context for e in examples))}
    halves: tuple[list[int], list[int]] = ([], [])
    for i, example in enumerate(examples):
        halves[order[example.context] % 2].append(i)
    return halves


def graded(
    answers: Sequence[Sequence[Answer]], refs: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each question's best-span score, exact match (0/1) and F1 (0–1) against its references."""
    texts = [best_text(a) for a in answers]
    return (
        best_scores(answers),
        np.array([cmrc_em(t, r) for t, r in zip(texts, refs)]),
        np.array([cmrc_f1(t, r) for t, r in zip(texts, refs)]),
    )


def mean_scores(em: np.ndarray, f1: np.ndarray) -> dict[str, float]:
    """Mean EM and F1 of :func:`graded`'s arrays, in percent as CMRC's script prints them."""
    if not len(em):
        return {"em": 0.0, "f1": 0.0}
    return {"em": round(100 * float(em.mean()), 2), "f1": round(100 * float(f1.mean()), 2)}


def answered_scores(probabilities: np.ndarray, em: np.ndarray, f1: np.ndarray, threshold: float) -> dict:
    """What the service returns with ``threshold``: the share answered, their exact-match rate, and
    EM/F1 over all questions with a withheld answer scoring 0 (in percent, as CMRC's script)."""
    answered = probabilities >= threshold
    n = max(len(answered), 1)
    return {
        "threshold": threshold,
        "answered": round(float(answered.mean()) if len(answered) else 0.0, 4),
        "em_answered": round(100 * float(em[answered].mean()), 2) if answered.any() else None,
        "em": round(100 * float(em[answered].sum()) / n, 2),
        "f1": round(100 * float(f1[answered].sum()) / n, 2),
    }


DevAnswers = tuple[list[QAExample], list[list[Answer]]]  # CMRC dev and the reader's answers to it


def dev_answers(predict: WindowPredictor, data_dir: Path, config: Config, limit: int | None = None) -> DevAnswers:
    dev = read_squad(data_dir / TESTS)[:limit]
    return dev, answer_in_context(predict, config, dev, desc="cmrc dev")


def short_passages(example: QAExample) -> tuple[str, str | None] | None:
    """The question's passage cut down to what a person would paste into the API: the sentence(s)
    holding its first reference answer, and a sentence of the same passage that neither holds nor
    touches it (``None`` when there is none). ``None`` when the answer's position is unknown."""
    if not example.answers or example.answers[0][1] < 0:
        return None
    text, start = example.answers[0]
    end = start + len(text)
    bounds = sentence_bounds(example.context)
    holding = [k for k, (i, j) in enumerate(bounds) if i < end and j > start]
    if not holding:
        return None
    with_answer = example.context[bounds[holding[0]][0] : bounds[holding[-1]][1]]
    others = [k for k in range(len(bounds)) if k < holding[0] - 1 or k > holding[-1] + 1]
    without = example.context[slice(*bounds[others[len(others) // 2]])] if others else None
    return with_answer.strip(), without.strip() if without else None
