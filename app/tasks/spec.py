"""The typed contract between an exported version and the service: its manifest, validated.

``export`` writes a task's spec into ``manifest.json``; the registry validates the manifest against
the same class when the version loads, so a version that lacks a field the pipeline reads is
refused with an error naming that field, and the version already serving stays. Fields the service
does not read (training commands, data sources, figures) pass through unchecked.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Part(BaseModel):
    """A section of a manifest the service reads: frozen, and unknown keys kept (older or newer
    exports may carry more than this version of the service uses)."""

    model_config = ConfigDict(frozen=True, extra="allow")


class ModelSpec(Part):
    """What every exported version promises, whatever its task."""

    task: str
    version: int = Field(ge=1)
    created: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, description="test-split figures, as export measured them")
    signature: dict[str, Any] = Field(default_factory=dict, description="the serving signature's inputs and outputs")
    warmup_inputs: dict[str, Any] = Field(
        default_factory=dict, description="inputs run once at load: a smoke check, and no slow first request"
    )

    # The serving signature's outputs the task's pipeline reads.
    required_outputs: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def gives_what_the_pipeline_reads(self) -> "ModelSpec":
        missing = [name for name in self.required_outputs if name not in self.signature.get("outputs", {})]
        if missing:
            raise ValueError(f"signature.outputs lacks {', '.join(missing)}: export it again with this version of training")
        return self

    def public(self) -> dict[str, Any]:
        """What ``GET /v1/models`` shows of the spec beyond task and version (tasks add their
        decoding and calibration)."""
        return {"metrics": self.metrics, "signature": self.signature, "created": self.created}


class SpecError(ValueError):
    """A manifest that does not validate against its task's spec."""


def validate_spec(spec_class: type[ModelSpec], manifest: dict[str, Any]) -> ModelSpec:
    """``manifest`` as ``spec_class``, or a :class:`SpecError` naming every offending field."""
    try:
        return spec_class.model_validate(manifest)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"manifest.json does not match the {spec_class.__name__}: {problems}") from None
