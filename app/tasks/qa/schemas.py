"""What the QA pipeline answers: the route adds ``model_version``, ``evaluate`` grades it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Candidate(BaseModel):
    answer: str
    probability: float = Field(
        description="estimated chance that this span is right (matches a reference answer exactly): the "
        "span's score through the model's calibration, which was fitted on best spans"
    )
    score: float = Field(description="P(start)·P(end) of the span, in [0, 1]: the reader's raw, uncalibrated score")
    evidence: float | None = Field(
        None, description="with aggregate=sum: the summed score of every passage where this text is a span, "
        "which candidates are ranked by (`score`, `probability` and the offsets are its best passage's); "
        "null with aggregate=max",
    )
    passage_index: int
    start: int = Field(description="offset into the passage, in Unicode code points")
    end: int = Field(description="exclusive")


class QAResult(BaseModel):
    answer: str | None = Field(description="null when the best span's probability is below the answer threshold")
    probability: float = Field(
        description="estimated chance that the best span is right (an exact match with a reference answer), "
        "also when it is below the threshold"
    )
    score: float = Field(description="the best span's raw score, P(start)·P(end)")
    passage_index: int | None
    start: int | None
    end: int | None
    candidates: list[Candidate] = Field(description="the best spans, best first (also when answer is null)")
