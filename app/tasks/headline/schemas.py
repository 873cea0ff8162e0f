"""What the headline pipeline answers for one text."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Candidate(BaseModel):
    text: str
    score: float = Field(description="log-probability divided by the length penalty (the ranking; higher is better)")
    log_prob: float = Field(description="sum of the log-probabilities of the characters and the end token")


class HeadlineResult(BaseModel):
    headline: str = Field(description="the best candidate's text")
    candidates: list[Candidate] = Field(description="best first")
    truncated: bool = Field(description="the text was longer than the model reads; only its start was used")
    chars_read: int = Field(description="how many characters of the text the model read")
    in_domain: bool | None = Field(
        None,
        description="false when the best headline is less likely than those the model writes for 95 % of the kinds of "
        "text it learned from (scientific abstracts, and news posts for a model trained on them): the text is probably "
        "of another kind and the headline doubtful; null for a model exported without this check",
    )
