"""Decoding in the graph: Viterbi over the CRF, each entity of the path and its marginal
probability; and the in-process predictor held-out scoring uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from app.tasks.batches import map_by_length
from app.tasks.text import codepoints_of
from training.data.tags import Span, as_bio, spans_from_tag_batch
from training.layers import CRF


def make_tagger(
    model: keras.Model, tags: list[str] | None = None, temperature: float | tf.Variable = 1.0
) -> tf.types.experimental.PolymorphicFunction:
    """Code points → ``{"path": best tag ids [B, L], "confidence": its probability [B]}``, with
    Viterbi in the graph; given the ``tags``' names, also each entity of the path with its
    marginal probability under the CRF (``entity_*`` [B, M], ordered by start, -1 / '' padding).

    Probabilities are those of the CRF at ``temperature`` (:mod:`training.tasks.ner.calibrate`);
    the path is the same at every temperature."""
    crf: CRF = model.get_layer("crf")
    roles = None if tags is None else EntityRoles.of(tags)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
    def tag(codepoints):
        mask = codepoints != 0
        emissions = model(codepoints, training=False)
        path, score = crf.decode(emissions, mask)
        out = {"path": path, "confidence": tf.exp(score / temperature - crf.log_partition(emissions, mask, temperature))}
        if roles is not None:
            out.update(roles.entities(crf, emissions, mask, path, temperature))
        return out

    return tag


@dataclass(frozen=True)
class EntityRoles:
    """What each tag id means for entities: opens one (B-, S-), continues one (I-, E-), its type."""

    opens: np.ndarray  # bool [K]
    continues: np.ndarray  # bool [K]
    type_of: np.ndarray  # int32 [K], -1 for O
    types: tuple[str, ...]

    @classmethod
    def of(cls, tags: list[str]) -> "EntityRoles":
        prefixes = [t.partition("-")[0] for t in tags]
        labels = [t.partition("-")[2] for t in tags]
        types = tuple(dict.fromkeys(label for label in labels if label))
        return cls(
            np.array([p in ("B", "S") for p in prefixes]),
            np.array([p in ("I", "E") for p in prefixes]),
            np.array([types.index(label) if label else -1 for label in labels], dtype=np.int32),
            types,
        )

    def entities(
        self, crf: CRF, emissions: tf.Tensor, mask: tf.Tensor, path: tf.Tensor, temperature: float | tf.Tensor = 1.0
    ) -> dict[str, tf.Tensor]:
        """The entities of ``path`` and the probability of each (exactly that span with that type)."""
        opens, continues = tf.constant(self.opens), tf.constant(self.continues)
        type_of = tf.constant(self.type_of)
        # An entity runs from a tag that opens one to just before the next tag that does not
        # continue it (the CRF's constraints keep a continuation to its own type).
        stops = tf.concat([~tf.gather(continues, path) | ~mask, tf.ones_like(mask[:, :1])], axis=1)
        length = tf.shape(stops)[1]
        stop_at = tf.where(stops, tf.range(length)[None, :], length)
        next_stop = tf.transpose(tf.scan(tf.minimum, tf.transpose(stop_at), reverse=True))
        found = tf.cast(tf.where(tf.gather(opens, path) & mask), tf.int32)  # [E, 2]: row-major, by start
        rows, starts = found[:, 0], found[:, 1]
        ends = tf.gather_nd(next_stop, tf.stack([rows, starts + 1], axis=1))
        types = tf.gather(type_of, tf.gather_nd(path, found))
        continuations = continues[None, :] & (type_of[None, :] == types[:, None])  # [E, K]: tags that would extend it
        probabilities = tf.exp(crf.span_log_marginals(emissions, mask, path, rows, starts, ends, continuations, temperature))

        def padded(values, fill):
            return tf.RaggedTensor.from_value_rowids(values, rows, nrows=tf.shape(path)[0]).to_tensor(fill)

        return {
            "entity_starts": padded(starts, -1),
            "entity_ends": padded(ends, -1),
            "entity_types": padded(tf.gather(tf.constant(self.types), types), ""),
            "entity_probabilities": padded(probabilities, -1.0),
        }


def predict_spans(
    predict: Callable[[list[str]], tuple[np.ndarray, np.ndarray]], texts: list[str], batch_size: int = 64, desc: str | None = None
) -> list[list[Span]]:
    """Entity spans for each text; ``predict`` maps a batch of texts to (byte-string tags, lengths).

    Texts of similar length are batched together so little time goes on padding.
    """
    def spans(batch: list[str]) -> list[list[Span]]:
        return list(spans_from_tag_batch(*predict(batch)))

    return map_by_length(spans, texts, [len(t) for t in texts], batch_size, desc)


def in_process_predictor(model: keras.Model, tags: list[str]):
    tagger = make_tagger(model)
    names = np.array([as_bio(t).encode() for t in tags], dtype=object)

    def predict(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        codepoints = codepoints_of(texts)
        path = tagger(codepoints.to_tensor())["path"]
        return names[path.numpy()], codepoints.row_lengths().numpy()

    return predict
