"""``POST /v1/ner``: Chinese named entities (PER, LOC, ORG) with character offsets."""

# No `from __future__ import annotations`: the request model is defined per app, inside
# build_router, and FastAPI must see the class itself in the endpoint's signature.

import tensorflow as tf
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.access import task_router
from app.dependencies import get_engine
from app.engine import InferenceEngine
from app.errors import error_responses
from app.registry import LoadedModel
from app.settings import Settings
from app.validation import user_text
from training.preprocessing.text import spans_from_tag_batch

TASK = "ner"
EXAMPLE = "新华社北京电国务院总理李鹏今天会见了日本客人。"


def request_model(settings: Settings) -> type[BaseModel]:
    """The request body with this app's limits (they are part of its OpenAPI schema)."""
    max_chars, max_texts = settings.max_text_chars, settings.max_batch_texts
    Text = user_text(max_chars)

    class NERRequest(BaseModel):
        """Either ``text`` (one text) or ``texts`` (a batch), not both."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"text": EXAMPLE}, {"texts": [EXAMPLE, "张三在上海工作。"]}],
                "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
            },
        )

        # Not nullable: leave the other field out.
        text: Text = Field(None, description=f"at most {max_chars} characters")
        texts: list[Text] = Field(None, min_length=1, max_length=max_texts, description=f"1 to {max_texts} texts")

        @model_validator(mode="after")
        def exactly_one(self) -> "NERRequest":
            if (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' or 'texts'")
            return self

    return NERRequest


class Entity(BaseModel):
    type: str = Field(description="PER, LOC or ORG (the types the model was trained on)")
    text: str
    start: int = Field(description="offset of the first character, in Unicode code points")
    end: int = Field(description="offset one past the last character (exclusive)")


class NERResult(BaseModel):
    entities: list[Entity]
    confidence: float = Field(description="probability the CRF gives its best tag sequence")


class NERResponse(NERResult):
    model_version: int


class NERBatchResponse(BaseModel):
    results: list[NERResult]
    model_version: int


def run_batch(model: LoadedModel, texts: list[str]) -> list[NERResult]:
    """Entities for a batch of texts (the engine's batch function; runs in a worker thread)."""
    out = model.predict(text=tf.constant([t.encode("utf-8") for t in texts]))
    spans = spans_from_tag_batch(out["tags"].numpy(), out["lengths"].numpy())
    return [
        NERResult(
            entities=[Entity(type=s.label, text=text[s.start : s.end], start=s.start, end=s.end) for s in text_spans],
            confidence=round(float(confidence), 6),
        )
        for text, text_spans, confidence in zip(texts, spans, out["confidence"].numpy())
    ]


def build_router(settings: Settings) -> APIRouter:
    """``POST /v1/ner`` with this app's limits."""
    NERRequest = request_model(settings)
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
                                {"type": "ORG", "text": "新华社", "start": 0, "end": 3},
                                {"type": "LOC", "text": "北京", "start": 3, "end": 5},
                                {"type": "ORG", "text": "国务院", "start": 6, "end": 9},
                                {"type": "PER", "text": "李鹏", "start": 11, "end": 13},
                                {"type": "LOC", "text": "日本", "start": 18, "end": 20},
                            ],
                            "confidence": 0.98,
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
        results, version = await engine.run(TASK, texts, request)
        if body.texts is None:
            return NERResponse(**results[0].model_dump(), model_version=version)
        return NERBatchResponse(results=results, model_version=version)

    return router
