"""The NER pipeline bound to one tagger: texts → entities with offsets and probabilities.

Viterbi decoding and the entity marginals run in the exported graph; this reads its outputs. The
route, ``python -m training ner evaluate`` and ``bench/`` call it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

from app.tasks.batches import map_by_length
from app.tasks.ner.schemas import Entity, NERResult
from app.tasks.ner.spec import NERSpec


class NERPipeline:
    def __init__(self, predict: Callable[..., dict]):
        self.predict = predict

    @classmethod
    def from_spec(cls, predict: Callable[..., dict], spec: NERSpec) -> "NERPipeline":
        return cls(predict)

    def read(self, texts: list[str]) -> list[NERResult]:
        """Entities of each text, in one model call (the micro-batcher's batch function)."""
        out = {k: v.numpy() for k, v in self.predict(text=tf.constant([t.encode("utf-8") for t in texts])).items()}
        fields = (out["entity_starts"], out["entity_ends"], out["entity_types"], out["entity_probabilities"])
        return [
            NERResult(
                entities=[
                    Entity(type=kind.decode(), text=text[start:end], start=int(start), end=int(end), probability=round(float(p), 6))
                    for start, end, kind, p in zip(*(column[row] for column in fields))
                    if start >= 0
                ],
                confidence=round(float(out["confidence"][row]), 6),
            )
            for row, text in enumerate(texts)
        ]

    @staticmethod
    def respond(result: NERResult, min_probability: float = 0.0) -> NERResult:
        """``result`` without the entities whose probability is below ``min_probability``."""
        if not min_probability:
            return result
        return result.model_copy(update={"entities": [e for e in result.entities if e.probability >= min_probability]})

    def answer_many(self, texts: Sequence[str], min_probability: float = 0.0, batch_size: int = 64, desc: str | None = None) -> list[NERResult]:
        """What ``/v1/ner`` answers for each text, in process, in batches of similar length."""
        def answer(batch: list[str]) -> list[NERResult]:
            return [self.respond(result, min_probability) for result in self.read(batch)]

        return map_by_length(answer, texts, [len(t) for t in texts], batch_size, desc)
