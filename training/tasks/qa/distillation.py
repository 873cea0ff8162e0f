"""Distillation: the averaged pointer distributions of trained teachers as soft targets."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from app.tasks.batches import map_by_length
from app.tasks.qa.preprocessing import model_inputs, pad_tokens
from training.tasks.qa.backbone import averaged_reader
from training.tasks.qa.head import span_probabilities


def teacher_probabilities(teacher: keras.Model, rows, batch_size: int = 64) -> list[np.ndarray]:
    """A (softmax-pointer) teacher's P(start), P(end) ``[length, 2]`` over each training window;
    the rest of each pointer's mass is on the "no answer" slot."""
    def read(batch: list) -> list[np.ndarray]:  # rows: (question tokens, window, start, end)
        inputs = model_inputs(tf.constant(pad_tokens([r[0] for r in batch])), tf.constant(pad_tokens([r[1].tokens for r in batch])))
        valid = inputs["passage_chars"] != 0
        probabilities = span_probabilities(teacher(inputs, training=False), valid, "softmax").numpy()
        return [p[: r[1].length] for p, r in zip(probabilities, batch)]

    return map_by_length(read, rows, [r[1].length for r in rows], batch_size, "teacher")


TEACHER_TARGETS = "teacher_targets.npz"


def distillation_targets(run_dir: Path, teachers: Sequence[Path], rows) -> list[np.ndarray]:
    """The teacher's pointer distributions over the training windows: the trained runs in
    ``teachers``, their logits averaged as :func:`build_ensemble` exports them. Computed once and
    kept in the run directory, so a resumed run does not recompute them."""
    cache = run_dir / TEACHER_TARGETS
    lengths = np.array([r[1].length for r in rows])
    if cache.exists():
        stored = np.load(cache)
        if np.array_equal(stored["lengths"], lengths):  # the same windows (same data, options and seed)
            return np.split(stored["probabilities"], np.cumsum(lengths)[:-1])
    soft = teacher_probabilities(averaged_reader(teachers, "teacher")[0], rows)
    np.savez(cache, probabilities=np.concatenate(soft), lengths=lengths)
    return soft
