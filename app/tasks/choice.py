"""The fields with which any task request names what answers it (docs/serving.md, Versions)."""

# No `from __future__ import annotations`: pydantic evaluates the field types here.

from dataclasses import dataclass

from pydantic import BaseModel, Field

from app.model_store import NAME_PATTERN
from app.validation import integer


@dataclass(frozen=True)
class Target:
    """What a request asks to be answered by (the registry resolves it); unset fields take the defaults."""

    model: str | None = None  # default: the model named after the task
    version: int | None = None
    label: str | None = None


class ModelChoice(BaseModel):
    """Base of every task's request body: which model, and which version or label of it."""

    model: str | None = Field(
        None, pattern=NAME_PATTERN, description="the model that answers; default: the task's own (`GET /v1/models` lists them)"
    )
    version: integer(gt=0) | None = Field(
        None, description="a loaded version of that model; default: the traffic split's version, or the serving one"
    )
    version_label: str | None = Field(
        None, pattern=NAME_PATTERN,
        description="a label of that model (e.g. `stable`) instead of a version; with `version` too, it must name that version",
    )

    def target(self) -> Target:
        return Target(self.model, self.version, self.version_label)
