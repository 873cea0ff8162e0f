"""``POST /v1/headline``: a title for a Chinese scientific abstract, with scored alternatives."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.

from fastapi import APIRouter, Depends, Request

from app.access import caller_identity, task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine
from app.errors import error_responses
from app.settings import Settings
from app.tasks.headline.requests import request_model
from app.tasks.headline.schemas import HeadlineResult

TASK = "headline"


class HeadlineResponse(HeadlineResult):
    model: str
    model_version: int


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/headline`` with this app's limits."""
    HeadlineRequest = request_model(settings.max_text_chars, settings.max_beam_width, settings.max_headline_tokens)
    router = task_router(TASK)  # who may call: see task_router

    @router.post(
        "/v1/headline",
        summary="Generate a headline for an abstract",
        response_model=HeadlineResponse,
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {
                            "headline": "基于分簇的能量均衡路由协议",
                            "candidates": [{"text": "基于分簇的能量均衡路由协议", "score": -1.21945, "log_prob": -3.8616}],
                            "truncated": False,
                            "chars_read": 55,
                            "model": "headline",
                            "model_version": 1,
                        }
                    }
                }
            },
            **error_responses("headline"),
        },
    )
    async def headline(body: HeadlineRequest, request: Request, engine: InferenceEngine = Depends(get_engine)) -> HeadlineResponse:
        with engine.registry.lease(TASK, body.target(), caller_identity(request)) as model:
            pipeline = model.pipeline
            job = pipeline.job(body.text, body.beam_width, body.max_length, body.num_candidates)
            (candidates,) = await engine.run(model, [job], request)
            result = pipeline.respond(body.text, candidates, body.num_candidates)
        return HeadlineResponse(**result.model_dump(), model=model.model, model_version=model.version)

    return router
