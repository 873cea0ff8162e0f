"""``POST /v1/qa``: the answer to a question, as a span of one of the given passages."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.


from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from app.access import caller_identity, task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine
from app.errors import error_responses
from app.settings import Settings
from app.tasks.qa.preprocessing import segment
from app.tasks.qa.requests import EXAMPLE, request_model
from app.tasks.qa.schemas import QAResult

TASK = "qa"


class QAResponse(QAResult):
    model: str
    model_version: int


def warm_up() -> None:
    """Load jieba's dictionary at start-up rather than on the first request (about a second)."""
    segment(EXAMPLE["question"])


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/qa`` with this app's limits."""
    QARequest = request_model(settings.max_question_chars, settings.max_passages, settings.max_passage_chars)
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
                            "model": "qa",
                            "model_version": 1,
                        }
                    }
                }
            },
            **error_responses("QA"),
        },
    )
    async def answer(body: QARequest, request: Request, engine: InferenceEngine = Depends(get_engine)) -> QAResponse:
        # One version from here to the answer.
        with engine.registry.lease(TASK, body.target(), caller_identity(request)) as model:
            pipeline = model.pipeline
            # jieba is plain Python: segment in a worker thread, off the event loop.
            plan = await run_in_threadpool(pipeline.plan, body.question, body.passages)
            spans = await engine.run(model, plan.rows, request)
            threshold = body.min_probability if body.min_probability is not None else settings.qa_answer_threshold
            result = pipeline.respond(body.passages, plan, spans, body.num_candidates, body.aggregate, threshold)
        return QAResponse(**result.model_dump(), model=model.model, model_version=model.version)

    return router
