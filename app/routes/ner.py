"""``POST /v1/ner``: Chinese named entities (PER, LOC, ORG) with character offsets."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from app.access import caller_identity, task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine
from app.errors import error_responses
from app.settings import Settings
from app.tasks.ner.requests import request_model
from app.tasks.ner.schemas import NERResult

TASK = "ner"


class NERResponse(NERResult):
    model: str
    model_version: int


class NERBatchResponse(BaseModel):
    results: list[NERResult]
    model: str
    model_version: int


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/ner`` with this app's limits."""
    NERRequest = request_model(settings.max_text_chars, settings.max_batch_texts)
    router = task_router(TASK)  # who may call: see task_router

    @router.post(
        "/v1/ner",
        summary="Find person, location and organisation names",
        response_model=NERResponse | NERBatchResponse,
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {
                            "entities": [
                                {"type": "ORG", "text": "新华社", "start": 0, "end": 3, "probability": 0.99},
                                {"type": "LOC", "text": "北京", "start": 3, "end": 5, "probability": 0.99},
                                {"type": "ORG", "text": "国务院", "start": 6, "end": 9, "probability": 0.97},
                                {"type": "PER", "text": "李鹏", "start": 11, "end": 13, "probability": 0.99},
                                {"type": "LOC", "text": "日本", "start": 18, "end": 20, "probability": 0.95},
                            ],
                            "confidence": 0.98,
                            "model": "ner",
                            "model_version": 1,
                        }
                    }
                }
            },
            **error_responses("NER"),
        },
    )
    async def recognise(body: NERRequest, request: Request, engine: InferenceEngine = Depends(get_engine)):
        texts = body.texts if body.texts is not None else [body.text]
        with engine.registry.lease(TASK, body.target(), caller_identity(request)) as model:
            results = [model.pipeline.respond(r, body.min_probability) for r in await engine.run(model, texts, request)]
        if body.texts is None:
            return NERResponse(**results[0].model_dump(), model=model.model, model_version=model.version)
        return NERBatchResponse(results=results, model=model.model, model_version=model.version)

    return router
