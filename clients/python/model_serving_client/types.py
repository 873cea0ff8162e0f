"""Typed responses, mirroring the service's OpenAPI schema (a test compares the two).

Fields the service adds later are ignored rather than rejected, so an older client keeps working
against a newer service.
"""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Entity(_Response):
    type: str
    """PER, LOC or ORG."""
    text: str
    start: int
    """Offset of the first character, in Unicode code points."""
    end: int
    """Exclusive."""
    probability: float | None = None
    """The CRF's probability that exactly this span is an entity of this type."""


class NERResult(_Response):
    entities: list[Entity]
    confidence: float
    """Probability of the whole best tag sequence."""


class NERResponse(NERResult):
    model: str | None = None
    """The model that answered (a task's default model is named after it)."""
    model_version: int


class NERBatchResponse(_Response):
    results: list[NERResult]
    model: str | None = None
    """The model that answered (a task's default model is named after it)."""
    model_version: int


class QACandidate(_Response):
    answer: str
    probability: float
    """Estimated chance that this span is right (calibrated)."""
    score: float
    """The reader's raw P(start)·P(end)."""
    evidence: float | None = None
    """With ``aggregate="sum"``: the summed score of every passage holding this text (the ranking)."""
    passage_index: int
    start: int
    end: int


class QAResponse(_Response):
    answer: str | None
    """None when the best span's probability is below the threshold."""
    probability: float
    score: float
    passage_index: int | None
    start: int | None
    end: int | None
    candidates: list[QACandidate]
    model: str | None = None
    """The model that answered (a task's default model is named after it)."""
    model_version: int


class HeadlineCandidate(_Response):
    text: str
    score: float
    """Log-probability divided by the length penalty (the ranking), not a probability."""
    log_prob: float


class HeadlineResponse(_Response):
    headline: str
    candidates: list[HeadlineCandidate]
    truncated: bool
    chars_read: int
    in_domain: bool | None = None
    """False: the text is probably of a kind the model never learned, the headline doubtful (None:
    the version has no such check)."""
    model: str | None = None
    """The model that answered (a task's default model is named after it)."""
    model_version: int


class SpectrumResult(_Response):
    label: str
    """STAR, GALAXY, QSO or UNKNOWN."""
    probabilities: dict[str, float]
    z: float | None = None
    z_err: float | None = None
    subtype: str | None = None
    subclass: str | None = None
    stellar_template: str | None = None
    warning: int = 0
    warnings: list[str] = []
    median_snr: float | None = None
    masked_fraction: float
    heavily_masked: bool


class SpectraResponse(_Response):
    results: list[SpectrumResult]
    model: str | None = None
    """The model that answered (a task's default model is named after it)."""
    model_version: int


class FileSpectrumResult(SpectrumResult):
    file: str
    row: int | None = None
    targetid: str | None = None
    pipeline: dict[str, Union[str, float, int]] | None = None
    spectrum: dict[str, list[float]] | None = None


class FileSpectrumError(_Response):
    file: str
    row: int | None = None
    error: str


class FitsResponse(_Response):
    results: list[Union[FileSpectrumResult, FileSpectrumError]]
    model: str | None = None
    """The model that answered (a task's default model is named after it)."""
    model_version: int


class ModelInfo(_Response):
    model: str | None = None
    task: str
    version: int
    metrics: dict[str, Any]
    signature: dict[str, Any]
    created: str | None
    backend: str
    calibration: dict[str, Any] | None = None
    decoding: dict[str, Any] | None = None


class ServedModelInfo(_Response):
    model: str
    task: str
    default: bool
    """Whether it answers the task's requests that name no model."""
    serving_version: int | None
    loaded_versions: list[int]
    labels: dict[str, int]
    traffic: dict[str, int]
    """Version → weight of the traffic split ({}: none)."""


class ModelsResponse(_Response):
    models: list[ModelInfo]
    served: list[ServedModelInfo] = []
    load_errors: dict[str, str]


class ReloadResponse(_Response):
    model: str | None = None
    task: str
    version: int
    previous_version: int | None


class VersionResponse(_Response):
    model: str
    version: int
    loaded: bool
    still_in_flight: int = 0


class LabelsResponse(_Response):
    model: str
    labels: dict[str, int]


class TrafficResponse(_Response):
    model: str
    weights: dict[str, int]
