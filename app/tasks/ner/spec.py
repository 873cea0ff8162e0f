"""What an exported NER tagger promises: its tags, and entities with probabilities from its graph."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.tasks.spec import ModelSpec, Part


class NERCalibration(Part):
    """The temperature the graph divides the CRF's scores by (baked in at export: the service
    applies nothing), and what it was fitted on."""

    temperature: float = Field(gt=0)
    fitted_on: str


class NERSpec(ModelSpec):
    task: Literal["ner"] = "ner"
    tags: list[str] = Field(min_length=1)
    tag_scheme: Literal["BIO", "BIOES"] = "BIO"
    calibration: NERCalibration | None = Field(None, description="None: exported before calibration (temperature 1)")
    # The graph decodes entities and their CRF marginals.
    required_outputs = ("entity_starts", "entity_ends", "entity_types", "entity_probabilities", "confidence")

    def public(self) -> dict[str, Any]:
        shown = {"calibration": self.calibration.model_dump()} if self.calibration is not None else {}
        return {**super().public(), **shown}
