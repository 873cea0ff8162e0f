"""``POST /v1/qa``: the answer to a question, as a span of one of the given passages."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.access import task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine, ModelUnavailable
from app.errors import error_responses
from app.registry import LoadedModel
from app.settings import Settings
from app.validation import integer, number, user_text
from training.calibration import PlattScaling
from training.preprocessing.qa import (
    Answer, Spans, Window, answer_policy, best_answers, prefer_nested, prepare, read_windows, segment,
)

TASK = "qa"
MAX_CANDIDATES = 10
EXAMPLE = {
    "question": "中国的首都是哪里？",
    "passages": ["北京是中华人民共和国的首都，也是全国的政治中心。", "上海是中国最大的经济中心。"],
}


def request_model(settings: Settings) -> type[BaseModel]:
    """The request body with this app's limits (they are part of its OpenAPI schema)."""
    max_question, max_passages, max_passage = settings.max_question_chars, settings.max_passages, settings.max_passage_chars
    Question, Passage = user_text(max_question), user_text(max_passage)

    class QARequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

        question: Question = Field(description=f"at most {max_question} characters")
        passages: list[Passage] = Field(
            min_length=1, max_length=max_passages, description=f"1 to {max_passages} passages of at most {max_passage} characters"
        )
        num_candidates: integer(ge=1, le=MAX_CANDIDATES) = Field(5, description="how many ranked candidates to return")
        min_probability: number(ge=0.0, le=1.0) | None = Field(
            None, description="withhold the answer (answer: null) when its `probability` is below this "
            "(default: the model's answer threshold, see GET /v1/models, or APP_QA_ANSWER_THRESHOLD)",
        )
        aggregate: Literal["max", "sum"] = Field(
            "max", description="max: candidates ranked by their own score; sum: the same answer text found in "
            "several passages adds up their scores (`evidence`), which ranks it — for many short passages "
            "such as search-result snippets, which repeat the answer",
        )

    return QARequest


class Candidate(BaseModel):
    answer: str
    probability: float = Field(
        description="estimated chance that this span is right (matches a reference answer exactly): the "
        "span's score through the model's calibration, which was fitted on best spans"
    )
    score: float = Field(description="P(start)·P(end) of the span, in [0, 1]: the reader's raw, uncalibrated score")
    evidence: float | None = Field(
        None, description="with aggregate=sum: the summed score of every passage where this text is a span, "
        "which candidates are ranked by (`score`, `probability` and the offsets are its best passage's); "
        "null with aggregate=max",
    )
    passage_index: int
    start: int = Field(description="offset into the passage, in Unicode code points")
    end: int = Field(description="exclusive")


class QAResponse(BaseModel):
    answer: str | None = Field(description="null when the best span's probability is below the answer threshold")
    probability: float = Field(
        description="estimated chance that the best span is right (an exact match with a reference answer), "
        "also when it is below the threshold"
    )
    score: float = Field(description="the best span's raw score, P(start)·P(end)")
    passage_index: int | None
    start: int | None
    end: int | None
    candidates: list[Candidate] = Field(description="the best spans, best first (also when answer is null)")
    model_version: int


def run_batch(model: LoadedModel, rows: list[tuple[tuple[str, ...], Window]]) -> list[Spans]:
    """Best spans of each (question tokens, passage window) row (the engine's batch function)."""
    return read_windows(model.predict, rows)


def warm_up() -> None:
    """Load jieba's dictionary at start-up rather than on the first request (about a second)."""
    segment(EXAMPLE["question"])


def _candidate(answer: Answer, calibration: PlattScaling) -> Candidate:
    return Candidate(
        answer=answer.text,
        probability=round(calibration.probability(answer.score), 6),
        score=round(answer.score, 6),
        evidence=None if answer.evidence is None else round(answer.evidence, 6),
        passage_index=answer.passage_index,
        start=answer.start,
        end=answer.end,
    )


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/qa`` with this app's limits."""
    QARequest = request_model(settings)
    router = task_router(TASK)  # who may call: see task_router

    @router.post(
        "/v1/qa",
        summary="Answer a question from passages",
        response_model=QAResponse,
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {
                            "answer": "北京", "probability": 0.66, "score": 0.91, "passage_index": 0, "start": 0, "end": 2,
                            "candidates": [
                                {"answer": "北京", "probability": 0.66, "score": 0.91, "passage_index": 0, "start": 0, "end": 2}
                            ],
                            "model_version": 1,
                        }
                    }
                }
            },
            **error_responses("QA"),
        },
    )
    async def answer(body: QARequest, request: Request, engine: InferenceEngine = Depends(get_engine)) -> QAResponse:
        model = engine.registry.get(TASK)
        if model is None:
            raise ModelUnavailable(f"no {TASK} model is loaded")
        cut = model.manifest["preprocessing"]  # how the reader was trained to see passages (export writes it)
        # jieba is plain Python: segment in a worker thread, off the event loop.
        question_tokens, plan = await run_in_threadpool(
            prepare, body.question, body.passages, cut["window_chars"], cut["window_stride"], cut["max_question_chars"]
        )
        results, version = await engine.run(TASK, [(question_tokens, window) for _, window in plan], request)
        spans = [(index, window, *result) for (index, window), result in zip(plan, results)]
        calibration, threshold = answer_policy(model.manifest.get("calibration"))
        if body.min_probability is not None:
            threshold = body.min_probability
        elif settings.qa_answer_threshold is not None:
            threshold = settings.qa_answer_threshold
        # First the best span or a shorter one inside it, chosen among the top_k as at evaluation.
        ratio, pool = model.manifest.get("decoding", {}).get("nested_answer_ratio"), cut["top_k"]
        ranked = best_answers(body.passages, spans, max(body.num_candidates, pool), body.aggregate)
        ranked = prefer_nested(ranked, ratio, pool)
        candidates = [_candidate(a, calibration) for a in ranked[: body.num_candidates]]
        best = candidates[0] if candidates and candidates[0].probability >= threshold else None
        return QAResponse(
            answer=best.answer if best else None,
            probability=candidates[0].probability if candidates else 0.0,
            score=candidates[0].score if candidates else 0.0,
            passage_index=best.passage_index if best else None,
            start=best.start if best else None,
            end=best.end if best else None,
            candidates=candidates,
            model_version=version,
        )

    return router
