"""What ``POST /v1/qa`` accepts: a question, its passages, and how to rank and withhold answers."""

# No `from __future__ import annotations`: the request models are classes made per app (its limits
# are part of the OpenAPI schema), and FastAPI must see the classes themselves, not strings.

from pydantic import BaseModel, ConfigDict, Field

from app.tasks.choice import ModelChoice
from app.tasks.qa.pipeline import DEFAULT_AGGREGATE, Aggregate
from app.validation import integer, number, user_text

MAX_CANDIDATES = 10
EXAMPLE = {
    "question": "中国的首都是哪里？",
    "passages": ["北京是中华人民共和国的首都，也是全国的政治中心。", "上海是中国最大的经济中心。"],
}


def request_model(max_question: int, max_passages: int, max_passage: int) -> type[BaseModel]:
    """``POST /v1/qa``'s body: a question of at most ``max_question`` characters and 1 to
    ``max_passages`` passages of at most ``max_passage``."""
    Question, Passage = user_text(max_question), user_text(max_passage)

    class QARequest(ModelChoice):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

        question: Question = Field(description=f"at most {max_question} characters")
        passages: list[Passage] = Field(
            min_length=1, max_length=max_passages, description=f"1 to {max_passages} passages of at most {max_passage} characters"
        )
        num_candidates: integer(ge=1, le=MAX_CANDIDATES) = Field(5, description="how many ranked candidates to return")
        min_probability: number(ge=0.0, le=1.0) | None = Field(
            None, description="withhold the answer (answer: null) when its `probability` is below this "
            "(default: the model's answer threshold, see GET /v1/models, or APP_QA_ANSWER_THRESHOLD)",
        )
        aggregate: Aggregate = Field(
            DEFAULT_AGGREGATE, description="sum (default): the same answer text found in several passages adds up its "
            "scores (`evidence`), which ranks it — search-result snippets repeat the answer; max: candidates ranked by "
            "their own score (`evidence` null)",
        )

    return QARequest
