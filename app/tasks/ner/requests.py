"""What ``POST /v1/ner`` accepts: one text or a batch, with an entity probability floor."""

# No `from __future__ import annotations`: the request models are classes made per app (its limits
# are part of the OpenAPI schema), and FastAPI must see the classes themselves, not strings.

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.tasks.choice import ModelChoice
from app.validation import number, user_text

EXAMPLE = "新华社北京电国务院总理李鹏今天会见了日本客人。"


def request_model(max_chars: int, max_texts: int) -> type[BaseModel]:
    """``POST /v1/ner``'s body: texts of at most ``max_chars`` characters, at most ``max_texts`` in a batch."""
    Text = user_text(max_chars)

    class NERRequest(ModelChoice):
        """Either ``text`` (one text) or ``texts`` (a batch), not both."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"text": EXAMPLE}, {"texts": [EXAMPLE, "张三在上海工作。"]}],
                "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
            },
        )

        # Not nullable: leave the other field out.
        text: Text = Field(None, description=f"at most {max_chars} characters")
        texts: list[Text] = Field(None, min_length=1, max_length=max_texts, description=f"1 to {max_texts} texts")
        min_probability: number(ge=0.0, le=1.0) = Field(
            0.0, description="leave out entities whose `probability` is below this"
        )

        @model_validator(mode="after")
        def exactly_one(self) -> "NERRequest":
            if (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' or 'texts'")
            return self

    return NERRequest
