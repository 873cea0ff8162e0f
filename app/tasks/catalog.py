"""The runtime of each task the registry can load: its spec class and its pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from app.tasks.headline.pipeline import HeadlinePipeline
from app.tasks.headline.spec import HeadlineSpec
from app.tasks.ner.pipeline import NERPipeline
from app.tasks.ner.spec import NERSpec
from app.tasks.qa.pipeline import QAPipeline
from app.tasks.qa.spec import QASpec
from app.tasks.spec import ModelSpec
from app.tasks.spectra.pipeline import SpectraPipeline
from app.tasks.spectra.spec import SpectraSpec


@dataclass(frozen=True)
class TaskRuntime:
    spec: type[ModelSpec]
    pipeline: Any  # a class with from_spec(predict, spec) and read(items) -> one result per item

    def bind(self, predict: Callable[..., dict], spec: ModelSpec):
        return self.pipeline.from_spec(predict, spec)


RUNTIMES: dict[str, TaskRuntime] = {
    "headline": TaskRuntime(HeadlineSpec, HeadlinePipeline),
    "ner": TaskRuntime(NERSpec, NERPipeline),
    "qa": TaskRuntime(QASpec, QAPipeline),
    "spectra": TaskRuntime(SpectraSpec, SpectraPipeline),
}
