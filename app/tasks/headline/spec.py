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


class HeadlineDomainCheck(Part):
    """When a headline is one the model is unsure of: its best candidate's log-probability per
    generated token below what nearly all (95 %) of the texts it was held out on got."""

    min_log_prob_per_token: float = Field(le=0.0)
    fitted_on: str


class HeadlineSpec(ModelSpec):
    task: Literal["headline"] = "headline"
    decoding: HeadlineDecoding
    preprocessing: HeadlinePreprocessing
    domain_check: HeadlineDomainCheck | None = Field(None, description="None: exported before the check (no in_domain)")

    def public(self) -> dict[str, Any]:
        shown = {"domain_check": self.domain_check.model_dump()} if self.domain_check is not None else {}
        return {
            **super().public(), "decoding": self.decoding.model_dump(), "preprocessing": self.preprocessing.model_dump(), **shown
        }
