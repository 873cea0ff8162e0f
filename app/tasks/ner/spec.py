"""What an exported NER tagger promises: its tags, and entities with probabilities from its graph."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.tasks.spec import ModelSpec

class NERSpec(ModelSpec):
    task: Literal["ner"] = "ner"
    tags: list[str] = Field(min_length=1)
    tag_scheme: Literal["BIO", "BIOES"] = "BIO"
    # The graph decodes entities and their CRF marginals.
    required_outputs = ("entity_starts", "entity_ends", "entity_types", "entity_probabilities", "confidence")
