"""What an exported QA reader promises: how it cuts passages, how its spans become an answer, and
how its scores become probabilities."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.tasks.calibration import PlattScaling
from app.tasks.spec import ModelSpec, Part

# A reader without a fitted calibration withholds its best answer below this raw score.
UNCALIBRATED_ANSWER_THRESHOLD = 0.05


class QAPreprocessing(Part):
    """How the reader was trained to see passages (windows of jieba tokens) and what it decodes."""

    window_chars: int = Field(gt=0)
    window_stride: int = Field(gt=0)
    max_question_chars: int = Field(gt=0)
    max_answer_chars: int = Field(gt=0)
    top_k: int = Field(gt=0, description="spans decoded per window; the pool the answer is chosen from")


class QACalibration(Part):
    """Platt scaling of the best span's score to P(exact match), and the default answer threshold."""

    method: Literal["platt"] = "platt"
    slope: float = 1.0
    intercept: float = 0.0
    answer_threshold: float = Field(UNCALIBRATED_ANSWER_THRESHOLD, ge=0.0, le=1.0)

    @property
    def scaling(self) -> PlattScaling:
        return PlattScaling(self.slope, self.intercept)


class QADecoding(Part):
    nested_answer_ratio: float | None = Field(
        None, gt=0.0, description="prefer a span inside the best one scoring at least this share of it (None: off)"
    )


class QASpec(ModelSpec):
    task: Literal["qa"] = "qa"
    preprocessing: QAPreprocessing
    calibration: QACalibration | None = Field(None, description="None: the probability is the raw score")
    decoding: QADecoding = QADecoding()

    def public(self) -> dict[str, Any]:
        shown = {"decoding": self.decoding.model_dump()}
        if self.calibration is not None:  # the fitting table stays in the manifest
            shown["calibration"] = self.calibration.model_dump(exclude={"thresholds"})
        return {**super().public(), **shown}
