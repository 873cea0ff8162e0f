"""Distillation: the averaged pointer distributions of trained teachers as soft targets."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from app.tasks.batches import length_batches
from app.tasks.qa.preprocessing import model_inputs, pad_tokens
from training.tasks.qa.backbone import averaged_reader
from training.tasks.qa.head import span_probabilities


def teacher_probabilities(teacher: keras.Model, rows, batch_size: int = 64) -> list[np.ndarray]:
    """A (softmax-pointer) teacher's P(start), P(end) ``[length, 2]`` over each training window;
    the rest of each pointer's mass is on the "no answer" slot."""
    result: list[np.ndarray] = [np.empty((0, 2), np.float32)] * len(rows)
    for batch in length_batches([r[1].length for r in rows], batch_size, "teacher"):
        inputs = model_inputs(
            tf.constant(pad_tokens([rows[i][0] for i in batch])), tf.constant(pad_tokens([rows[i][1].tokens for i in batch]))
        )
        valid = inputs["passage_chars"] != 0
        probabilities = span_probabilities(teacher(inputs, training=False), valid, "softmax").numpy()
        for row, i in zip(probabilities, batch):
            result[i] = row[: rows[i][1].length]
    return result


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
