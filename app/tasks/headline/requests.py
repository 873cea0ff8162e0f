"""What ``POST /v1/headline`` accepts: a Chinese abstract and how to search for its headline."""

# No `from __future__ import annotations`: the request models are classes made per app (its limits
# are part of the OpenAPI schema), and FastAPI must see the classes themselves, not strings.

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.tasks.choice import ModelChoice
from app.tasks.chinese_script import has_chinese
from app.validation import integer, user_text

EXAMPLE = "针对无线传感器网络中节点能量有限的问题,提出一种基于分簇的能量均衡路由协议,仿真结果表明该协议延长了网络寿命."


def request_model(max_chars: int, max_beam_width: int, max_tokens: int) -> type[BaseModel]:
    """``POST /v1/headline``'s body: an abstract of at most ``max_chars`` characters, beams up to
    ``max_beam_width``, headlines up to ``max_tokens`` characters. (Not ``max_length``: in the
    class body below that name is the field.)"""
    Text = user_text(max_chars)

    class HeadlineRequest(ModelChoice):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": EXAMPLE, "num_candidates": 3}]})

        text: Text = Field(
            description=f"the abstract, at most {max_chars} characters; the model reads its first characters "
            "(see `chars_read` in the response and `preprocessing.max_source_chars` in `GET /v1/models`)"
        )
        beam_width: integer(ge=1, le=max_beam_width) | None = Field(
            None,
            description="beam search width (1 = greedy); default: the model's, or num_candidates if larger",
        )
        num_candidates: integer(ge=1, le=max_beam_width) = Field(
            1, description="how many ranked headlines to return; at most beam_width"
        )
        max_length: integer(ge=1, le=max_tokens) | None = Field(
            None, description="most characters generated; default: the model's"
        )

        @field_validator("text")
        @classmethod
        def in_chinese(cls, value: str) -> str:
            # The model learned to title Chinese abstracts: given none, it strings together digits
            # and letters it copied ("12345 678900 2 6年…"), with nothing in the answer to say so.
            if not has_chinese(value):
                raise ValueError("has no Chinese characters: the model writes titles for Chinese abstracts")
            return value

        @field_validator("num_candidates")
        @classmethod
        def within_the_beam(cls, value: int, info: ValidationInfo) -> int:
            beam_width = info.data.get("beam_width")
            if beam_width is not None and value > beam_width:
                raise ValueError(f"is {value}, more than beam_width {beam_width}")
            return value

    return HeadlineRequest
