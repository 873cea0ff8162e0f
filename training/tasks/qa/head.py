"""The span head: span losses, pointer probabilities, span decoding in the graph, and the reader
as a predictor the runtime's pipeline calls (in process or exported)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import keras
import tensorflow as tf
from keras import ops

from app.tasks.qa.answers import Answer
from app.tasks.qa.pipeline import DEFAULT_AGGREGATE, Aggregate, QAPipeline
from app.tasks.qa.preprocessing import model_inputs
from app.tasks.qa.spec import QACalibration, QADecoding, QAPreprocessing
from training.tasks.qa.config import Config


def sigmoid_span_loss(targets, logits):
    """Sigmoid cross-entropy for start and end at every real position (targets are -1 on padding).

    Independent sigmoids keep scores comparable across windows and passages, and let a window that
    holds no answer say so.
    """
    valid = ops.cast(targets >= 0, logits.dtype)
    losses = ops.binary_crossentropy(ops.maximum(targets, 0.0), logits, from_logits=True)  # [B, L, 2]
    # Per position [B, L]: Keras averages it over the positions of the passage mask it carries.
    return ops.sum(losses * valid, axis=-1)


def softmax_span_loss(targets, logits):
    """Cross-entropy of one softmax per pointer over the window's positions plus a "no answer"
    slot whose logit is fixed at 0 (targets all 0 in a window without the answer, -1 on padding).

    The positions compete, so the reader learns where the answer starts rather than how
    answer-like each character is; the null slot keeps a window without the answer able to say so,
    and its probabilities (:func:`span_probabilities`) comparable across windows.
    """
    valid = targets >= 0
    log_z = ops.logsumexp(_with_null_slot(logits, valid), axis=1)  # [B, 2]
    target_logit = ops.sum(ops.where(valid, targets * logits, 0.0), axis=1)  # 0: the null slot
    per_window = ops.sum(log_z - target_logit, axis=-1)  # [B]
    # Keras averages a [B, L] loss over the valid positions of the mask the logits carry; putting
    # each window's loss on its first position, scaled by the batch's valid positions per window,
    # makes that average the mean over windows.
    valid_count = ops.sum(ops.cast(valid[..., 0], logits.dtype))
    scale = valid_count / ops.cast(ops.shape(logits)[0], logits.dtype)
    first = ops.cast(ops.arange(ops.shape(logits)[1]) == 0, logits.dtype)[None, :]
    return per_window[:, None] * scale * first


def _with_null_slot(logits, valid):
    """Logits ``[B, L, 2]`` → ``[B, 1 + L, 2]``: the "no answer" slot (logit 0) first, padding at -1e9."""
    masked = ops.where(valid, logits, -1e9)
    return ops.concatenate([ops.zeros_like(masked[:, :1]), masked], axis=1)


SPAN_LOSSES = {"sigmoid": sigmoid_span_loss, "softmax": softmax_span_loss}


def span_probabilities(logits: tf.Tensor, valid: tf.Tensor, span_loss: str) -> tf.Tensor:
    """P(start), P(end) at each position ``[N, L, 2]`` under the loss the reader was trained with."""
    if span_loss == "sigmoid":
        return tf.sigmoid(logits)
    return tf.nn.softmax(_with_null_slot(logits, valid[..., None]), axis=1)[:, 1:]


def decode_spans(
    start: tf.Tensor, end: tf.Tensor, valid: tf.Tensor, max_answer_chars: int, top_k: int
) -> dict[str, tf.Tensor]:
    """The ``top_k`` spans by ``P(start)·P(end)`` with ``start ≤ end < start + max_answer_chars``.

    ``start``/``end`` are probabilities ``[N, L]``, ``valid`` marks real characters. Returns
    ``start``, exclusive ``end`` and ``score``, each ``[N, min(top_k, L²)]``, best first; slots
    beyond the valid spans score -1.
    """
    length = tf.shape(start)[1]
    scores = start[:, :, None] * end[:, None, :]  # [N, L(start), L(end)], end inclusive
    band = tf.linalg.band_part(tf.ones([length, length], tf.bool), 0, tf.minimum(max_answer_chars - 1, length))
    allowed = band[None] & valid[:, :, None] & valid[:, None, :]
    scores = tf.where(allowed, scores, -1.0)
    best, index = tf.math.top_k(tf.reshape(scores, [tf.shape(scores)[0], -1]), k=tf.minimum(top_k, length * length))
    return {"start": index // length, "end": index % length + 1, "score": best}


def make_reader(model: keras.Model, config: Config):
    """Model inputs → the ``top_k`` spans ``(start, end, score)`` of each window, decoded in the graph."""

    @tf.function(reduce_retracing=True)
    def read(inputs: dict[str, tf.Tensor]):
        valid = inputs["passage_chars"] != 0
        probabilities = span_probabilities(model(inputs, training=False), valid, config.span_loss)
        return decode_spans(probabilities[..., 0], probabilities[..., 1], valid, config.max_answer_chars, config.top_k)

    return read


# A reader signature: question_tokens, passage_tokens → the top spans of each window (what
# serving_default takes and gives).
WindowPredictor = Callable[..., dict]


def in_process_predictor(model: keras.Model, config: Config) -> WindowPredictor:
    read = make_reader(model, config)
    return lambda question_tokens, passage_tokens: read(model_inputs(question_tokens, passage_tokens))


def saved_model_predictor(version_dir: Path) -> WindowPredictor:
    """An exported reader's signature (what the service runs)."""
    return tf.saved_model.load(str(version_dir)).signatures["serving_default"]


def preprocessing_of(config: Config) -> QAPreprocessing:
    """How a reader trained with ``config`` cuts passages: the spec's ``preprocessing``, as export writes it."""
    return QAPreprocessing(**{name: getattr(config, name) for name in QAPreprocessing.model_fields})


def reader_pipeline(predict: WindowPredictor, config: Config, calibration: QACalibration | None = None) -> QAPipeline:
    """The pipeline ``/v1/qa`` answers with, over ``predict`` with ``config``'s cutting and decoding."""
    decoding = QADecoding(nested_answer_ratio=config.nested_answer_ratio)
    return QAPipeline(predict, preprocessing_of(config), decoding, calibration)


def answer_all(
    predict: WindowPredictor,
    config: Config,
    questions: Sequence[str],
    passages: Sequence[Sequence[str]],
    aggregate: Aggregate = DEFAULT_AGGREGATE,
    desc: str | None = None,
) -> list[list[Answer]]:
    """The best answers to each question over its passages, ranked as ``/v1/qa`` ranks them."""
    return reader_pipeline(predict, config).rank_many(questions, passages, config.top_k, aggregate, desc)
