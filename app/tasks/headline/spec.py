"""What an exported headline generator promises: its default decoding and how much it reads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.tasks.spec import ModelSpec, Part


class HeadlineDecoding(Part):
    beam_width: int = Field(ge=1)
    max_length: int = Field(ge=1, description="most generated tokens")
    length_penalty: float = Field(ge=0.0, description="GNMT alpha ranking the beams (0: plain log-probability)")
    block_repeated_trigrams: bool


class HeadlinePreprocessing(Part):
    max_source_chars: int = Field(gt=0, description="how many characters of the text the model reads")


class HeadlineSpec(ModelSpec):
    task: Literal["headline"] = "headline"
    decoding: HeadlineDecoding
    preprocessing: HeadlinePreprocessing

    def public(self) -> dict[str, Any]:
        return {**super().public(), "decoding": self.decoding.model_dump(), "preprocessing": self.preprocessing.model_dump()}
