"""``POST /v1/headline``: a title for a Chinese scientific abstract, with scored alternatives."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.

from itertools import groupby
from typing import NamedTuple

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.access import task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine, ModelUnavailable
from app.errors import error_responses
from app.registry import LoadedModel
from app.settings import Settings
from app.validation import integer, user_text
from training.decoding import call_generator
from training.preprocessing.chinese_script import has_chinese, to_traditional, written_in_traditional

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


class Candidate(BaseModel):
    text: str
    score: float = Field(description="log-probability divided by the length penalty (the ranking; higher is better)")
    log_prob: float = Field(description="sum of the log-probabilities of the characters and the end token")


class HeadlineResponse(BaseModel):
    headline: str = Field(description="the best candidate's text")
    candidates: list[Candidate] = Field(description="best first")
    truncated: bool = Field(description="the text was longer than the model reads; only its start was used")
    chars_read: int = Field(description="how many characters of the text the model read")
    model_version: int


class Job(NamedTuple):
    text: str
    beam_width: int
    max_length: int


def run_batch(model: LoadedModel, jobs: list[Job]) -> list[list[Candidate]]:
    """Candidates for each job (the engine's batch function): one model call per (beam width, max length)."""
    decoding = model.manifest["decoding"]
    results: list[list[Candidate]] = [[] for _ in jobs]
    settings_of = lambda i: (jobs[i].beam_width, jobs[i].max_length)  # noqa: E731
    for (beam_width, max_length), group in groupby(sorted(range(len(jobs)), key=settings_of), key=settings_of):
        indices = list(group)
        out = call_generator(model.predict, [jobs[i].text for i in indices], beam_width, max_length, decoding)
        rows = zip(out["headlines"].numpy(), out["scores"].numpy(), out["log_probs"].numpy())
        for i, (texts, scores, log_probs) in zip(indices, rows):
            results[i] = [
                Candidate(text=t.decode("utf-8"), score=round(float(s), 5), log_prob=round(float(lp), 5))
                for t, s, lp in zip(texts, scores, log_probs)
            ]
    return results


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
        model = engine.registry.get(TASK)
        if model is None:
            raise ModelUnavailable(f"no {TASK} model is loaded")
        defaults, max_source = model.manifest["decoding"], model.manifest["preprocessing"]["max_source_chars"]
        beam_width = body.beam_width or max(defaults["beam_width"], body.num_candidates)
        job = Job(body.text, beam_width, body.max_length or defaults["max_length"])
        (candidates,), version = await engine.run(TASK, [job], request)
        candidates = candidates[: body.num_candidates]
        if written_in_traditional(body.text):  # the model writes Simplified; answer in the abstract's script
            candidates = [c.model_copy(update={"text": to_traditional(c.text)}) for c in candidates]
        return HeadlineResponse(
            headline=candidates[0].text,
            candidates=candidates,
            truncated=len(body.text) > max_source,
            chars_read=min(len(body.text), max_source),
            model_version=version,
        )

    return router
