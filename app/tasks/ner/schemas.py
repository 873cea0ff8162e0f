"""What the NER pipeline answers for one text."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Entity(BaseModel):
    type: str = Field(description="an entity type the model was trained on (PER, LOC, ORG for the bundled one)")
    text: str
    start: int = Field(description="offset of the first character, in Unicode code points")
    end: int = Field(description="offset one past the last character (exclusive)")
    probability: float = Field(
        description="the CRF's probability that exactly this span is an entity of this type (its marginal, "
        "computed in the model's graph)",
    )


class NERResult(BaseModel):
    entities: list[Entity]
    confidence: float = Field(description="probability the CRF gives its best tag sequence")
