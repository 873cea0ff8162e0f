"""``POST /v1/qa``: the answer to a question, as a span of one of the given passages."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.access import task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine
from app.errors import error_responses
from app.settings import Settings
from app.tasks.qa.preprocessing import segment
from app.tasks.qa.schemas import QAResult
from app.validation import integer, number, user_text

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


class QAResponse(QAResult):
    model_version: int


def warm_up() -> None:
    """Load jieba's dictionary at start-up rather than on the first request (about a second)."""
    segment(EXAMPLE["question"])


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
        with engine.registry.lease(TASK) as model:  # one version from here to the answer
            pipeline = model.pipeline
            # jieba is plain Python: segment in a worker thread, off the event loop.
            plan = await run_in_threadpool(pipeline.plan, body.question, body.passages)
            spans = await engine.run(model, plan.rows, request)
            threshold = body.min_probability if body.min_probability is not None else settings.qa_answer_threshold
            result = pipeline.respond(body.passages, plan, spans, body.num_candidates, body.aggregate, threshold)
        return QAResponse(**result.model_dump(), model_version=model.version)

    return router
