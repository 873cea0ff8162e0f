"""``POST /v1/headline``: a title for a Chinese scientific abstract, with scored alternatives."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.access import task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine
from app.errors import error_responses
from app.settings import Settings
from app.tasks.chinese_script import has_chinese
from app.tasks.headline.schemas import HeadlineResult
from app.validation import integer, user_text

TASK = "headline"
EXAMPLE = "针对无线传感器网络中节点能量有限的问题,提出一种基于分簇的能量均衡路由协议,仿真结果表明该协议延长了网络寿命."


def request_model(settings: Settings) -> type[BaseModel]:
    """The request body with this app's limits (they are part of its OpenAPI schema)."""
    # Not `max_length`: in the class body below that name is the field.
    max_chars, max_beam_width, max_tokens = settings.max_text_chars, settings.max_beam_width, settings.max_headline_tokens
    Text = user_text(max_chars)

    class HeadlineRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": EXAMPLE, "num_candidates": 3}]})

        text: Text = Field(
            description=f"the abstract, at most {max_chars} characters; the model reads its first characters "
            "(see `chars_read` in the response and `preprocessing.max_source_chars` in `GET /v1/models`)"
        )
        beam_width: integer(ge=1, le=max_beam_width) | None = Field(
            None,
            description="beam search width (1 = greedy); default: the model's, or num_candidates if larger",
        )
        num_candidates: integer(ge=1, le=max_beam_width) = Field(
            1, description="how many ranked headlines to return; at most beam_width"
        )
        max_length: integer(ge=1, le=max_tokens) | None = Field(
            None, description="most characters generated; default: the model's"
        )

        @field_validator("text")
        @classmethod
        def in_chinese(cls, value: str) -> str:
            # The model learned to title Chinese abstracts: given none, it strings together digits
            # and letters it copied ("12345 678900 2 6年…"), with nothing in the answer to say so.
            if not has_chinese(value):
                raise ValueError("has no Chinese characters: the model writes titles for Chinese abstracts")
            return value

        @field_validator("num_candidates")
        @classmethod
        def within_the_beam(cls, value: int, info: ValidationInfo) -> int:
            beam_width = info.data.get("beam_width")
            if beam_width is not None and value > beam_width:
                raise ValueError(f"is {value}, more than beam_width {beam_width}")
            return value

    return HeadlineRequest


class HeadlineResponse(HeadlineResult):
    model_version: int


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/headline`` with this app's limits."""
    HeadlineRequest = request_model(settings)
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
                            "model_version": 1,
                        }
                    }
                }
            },
            **error_responses("headline"),
        },
    )
    async def headline(body: HeadlineRequest, request: Request, engine: InferenceEngine = Depends(get_engine)) -> HeadlineResponse:
        with engine.registry.lease(TASK) as model:
            pipeline = model.pipeline
            job = pipeline.job(body.text, body.beam_width, body.max_length, body.num_candidates)
            (candidates,) = await engine.run(model, [job], request)
            result = pipeline.respond(body.text, candidates, body.num_candidates)
        return HeadlineResponse(**result.model_dump(), model_version=model.version)

    return router
