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
from app.validation import number, user_text
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
        min_probability: number(ge=0.0, le=1.0) = Field(
            0.0, description="leave out entities whose `probability` is below this"
        )

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
    probability: float | None = Field(
        None,
        description="the CRF's probability that exactly this span is an entity of this type (its marginal, "
        "computed in the model's graph); null from models exported before it",
    )


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
    out = {key: value.numpy() for key, value in model.predict(text=tf.constant([t.encode("utf-8") for t in texts])).items()}
    if "entity_probabilities" in out:
        entities = [
            [
                Entity(type=kind.decode(), text=text[start:end], start=int(start), end=int(end), probability=round(float(p), 6))
                for start, end, kind, p in zip(*(out[f"entity_{k}"][row] for k in ("starts", "ends", "types", "probabilities")))
                if start >= 0
            ]
            for row, text in enumerate(texts)
        ]
    else:  # a model exported before the graph gave entities and their probabilities
        entities = [
            [Entity(type=s.label, text=text[s.start : s.end], start=s.start, end=s.end) for s in spans]
            for text, spans in zip(texts, spans_from_tag_batch(out["tags"], out["lengths"]))
        ]
    return [
        NERResult(entities=found, confidence=round(float(confidence), 6))
        for found, confidence in zip(entities, out["confidence"])
    ]


def _kept(result: NERResult, min_probability: float) -> NERResult:
    if not min_probability:
        return result
    kept = [e for e in result.entities if e.probability is None or e.probability >= min_probability]
    return result.model_copy(update={"entities": kept})


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
                                {"type": "ORG", "text": "新华社", "start": 0, "end": 3, "probability": 0.99},
                                {"type": "LOC", "text": "北京", "start": 3, "end": 5, "probability": 0.99},
                                {"type": "ORG", "text": "国务院", "start": 6, "end": 9, "probability": 0.97},
                                {"type": "PER", "text": "李鹏", "start": 11, "end": 13, "probability": 0.99},
                                {"type": "LOC", "text": "日本", "start": 18, "end": 20, "probability": 0.95},
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
        results = [_kept(r, body.min_probability) for r in results]
        if body.texts is None:
            return NERResponse(**results[0].model_dump(), model_version=version)
        return NERBatchResponse(results=results, model_version=version)

    return router
