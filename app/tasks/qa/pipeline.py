"""The QA pipeline bound to one reader: question and passages → windows (jieba, in Python) → the
reader's spans per window (one model call for a batch of windows) → a ranked, calibrated answer.

The route calls :meth:`QAPipeline.plan`, queues the plan's rows on the micro-batcher, whose batch
function is :meth:`QAPipeline.read`, then :meth:`QAPipeline.respond`, which ranks with
:meth:`QAPipeline.rank`. ``python -m training qa evaluate`` grades :meth:`QAPipeline.rank_many`
(the same plan, read and rank, in process) and what :meth:`QAPipeline.result` makes of that
ranking with the version's calibration and answer threshold; ``bench/`` times
:meth:`QAPipeline.read`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from app.tasks.batches import map_by_length
from app.tasks.qa.answers import Answer, best_answers, prefer_nested
from app.tasks.qa.preprocessing import Spans, Window, prepare, read_windows
from app.tasks.qa.schemas import Candidate, QAResult
from app.tasks.qa.spec import QACalibration, QADecoding, QAPreprocessing, QASpec

Aggregate = Literal["max", "sum"]
# Summing over passages is what /v1/qa does unless asked otherwise: search-result snippets repeat
# the answer (WebQA sample: 0.450 against 0.413 with max for qa/6), and with one passage it
# changes nothing measurable (CMRC 2018 dev, docs/qa.md).
DEFAULT_AGGREGATE: Aggregate = "sum"
Row = tuple[tuple[str, ...], Window]  # (question tokens, passage window): one input of the reader


@dataclass(frozen=True)
class Plan:
    """A question's tokens and every window of its passages the reader has to look at."""

    question_tokens: tuple[str, ...]
    windows: list[tuple[int, Window]]  # (passage index, window)

    @property
    def rows(self) -> list[Row]:
        return [(self.question_tokens, window) for _, window in self.windows]


class QAPipeline:
    """Reads with ``predict`` (a reader signature taking ``question_tokens`` and ``passage_tokens``:
    the exported ``serving_default`` or its in-process twin), cuts and decodes as its spec says."""

    def __init__(
        self,
        predict: Callable[..., dict],
        preprocessing: QAPreprocessing,
        decoding: QADecoding = QADecoding(),
        calibration: QACalibration | None = None,
    ):
        self.predict = predict
        self.preprocessing = preprocessing
        self.decoding = decoding
        self.calibration = calibration or QACalibration()

    @classmethod
    def from_spec(cls, predict: Callable[..., dict], spec: QASpec) -> "QAPipeline":
        return cls(predict, spec.preprocessing, spec.decoding, spec.calibration)

    def plan(self, question: str, passages: Sequence[str]) -> Plan:
        """Segment and cut (plain Python, jieba: run it off the event loop)."""
        cut = self.preprocessing
        tokens, windows = prepare(question, passages, cut.window_chars, cut.window_stride, cut.max_question_chars)
        return Plan(tokens, windows)

    def read(self, rows: list[Row]) -> list[Spans]:
        """The reader's top spans of each row, in one model call (the micro-batcher's batch function)."""
        return read_windows(self.predict, rows)

    def rank(
        self, passages: Sequence[str], plan: Plan, spans: Sequence[Spans], num_candidates: int, aggregate: Aggregate = DEFAULT_AGGREGATE
    ) -> list[Answer]:
        """The best answers, best first: the best span or one inside it (chosen among the decoded
        pool, so asking for more candidates does not change the answer), then the rest by score."""
        pool = self.preprocessing.top_k
        window_spans = [(index, window, *found) for (index, window), found in zip(plan.windows, spans)]
        ranked = best_answers(passages, window_spans, max(num_candidates, pool), aggregate)
        return prefer_nested(ranked, self.decoding.nested_answer_ratio, pool)[:num_candidates]

    def respond(
        self,
        passages: Sequence[str],
        plan: Plan,
        spans: Sequence[Spans],
        num_candidates: int = 5,
        aggregate: Aggregate = DEFAULT_AGGREGATE,
        min_probability: float | None = None,
    ) -> QAResult:
        """The answer as ``/v1/qa`` gives it (:meth:`result` of :meth:`rank`)."""
        return self.result(self.rank(passages, plan, spans, num_candidates, aggregate), min_probability)

    def result(self, ranked: Sequence[Answer], min_probability: float | None = None) -> QAResult:
        """Ranked answers as ``/v1/qa`` gives them: calibrated, the best withheld (``None``) when its
        probability is below ``min_probability`` (default: the version's answer threshold)."""
        scaling = self.calibration.scaling
        threshold = self.calibration.answer_threshold if min_probability is None else min_probability
        candidates = [
            Candidate(
                answer=a.text,
                probability=round(scaling.probability(a.score), 6),
                score=round(a.score, 6),
                evidence=None if a.evidence is None else round(a.evidence, 6),
                passage_index=a.passage_index,
                start=a.start,
                end=a.end,
            )
            for a in ranked
        ]
        best = candidates[0] if candidates and candidates[0].probability >= threshold else None
        return QAResult(
            answer=best.answer if best else None,
            probability=candidates[0].probability if candidates else 0.0,
            score=candidates[0].score if candidates else 0.0,
            passage_index=best.passage_index if best else None,
            start=best.start if best else None,
            end=best.end if best else None,
            candidates=candidates,
        )

    def read_many(
        self, questions: Sequence[str], passages: Sequence[Sequence[str]], batch_size: int = 64, desc: str | None = None
    ) -> list[tuple[Plan, list[Spans]]]:
        """Plan and read many questions in process, their windows in batches of similar length."""
        plans = [self.plan(q, texts) for q, texts in zip(questions, passages)]
        rows = [(qi, row) for qi, plan in enumerate(plans) for row in plan.rows]
        spans: list[list[Spans]] = [[] for _ in plans]
        found = map_by_length(self.read, [row for _, row in rows], [window.length for _, (_, window) in rows], batch_size, desc)
        for (qi, _), result in zip(rows, found):  # rows are in plan order, so each plan's spans are too
            spans[qi].append(result)
        return list(zip(plans, spans))

    def rank_many(
        self,
        questions: Sequence[str],
        passages: Sequence[Sequence[str]],
        num_candidates: int,
        aggregate: Aggregate = DEFAULT_AGGREGATE,
        desc: str | None = None,
    ) -> list[list[Answer]]:
        """:meth:`rank` for many questions in process (for evaluation's diagnostic figures)."""
        return self.rank_read(passages, self.read_many(questions, passages, desc=desc), num_candidates, aggregate)

    def rank_read(
        self,
        passages: Sequence[Sequence[str]],
        read: Sequence[tuple[Plan, list[Spans]]],
        num_candidates: int,
        aggregate: Aggregate = DEFAULT_AGGREGATE,
    ) -> list[list[Answer]]:
        """:meth:`rank` of each question's passages over what :meth:`read_many` read for it (one
        reading can be ranked several ways)."""
        return [self.rank(texts, plan, spans, num_candidates, aggregate) for texts, (plan, spans) in zip(passages, read)]
