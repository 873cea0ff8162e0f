"""What an exported NER tagger promises: its tags, and entities with probabilities from its graph."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from app.tasks.spec import ModelSpec

# The signature outputs the pipeline reads: the graph decodes entities and their CRF marginals.
ENTITY_OUTPUTS = ("entity_starts", "entity_ends", "entity_types", "entity_probabilities", "confidence")


class NERSpec(ModelSpec):
    task: Literal["ner"] = "ner"
    tags: list[str] = Field(min_length=1)
    tag_scheme: Literal["BIO", "BIOES"] = "BIO"

    @model_validator(mode="after")
    def decodes_entities(self) -> "NERSpec":
        missing = [name for name in ENTITY_OUTPUTS if name not in self.signature.get("outputs", {})]
        if missing:
            raise ValueError(f"signature.outputs lacks {', '.join(missing)}: export it again with this version of training")
        return self

    @property
    def entity_types(self) -> list[str]:
        return sorted({tag.partition("-")[2] for tag in self.tags if tag != "O"})
