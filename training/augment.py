"""Training-time augmentation shared by the tasks."""

from __future__ import annotations

import tensorflow as tf


def mixup(x: tf.Tensor, y: tf.Tensor, alpha: float, seed: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """mixup (Zhang et al., 2018): convex combinations of a batch with a shuffled copy of itself.

    ``y`` are one-hot (or soft) labels; λ ~ Beta(α, α) per example, drawn as a
    ratio of two Gamma variates.
    """
    batch = tf.shape(x)[0]
    g1 = tf.random.gamma([batch], alpha, seed=seed)
    g2 = tf.random.gamma([batch], alpha, seed=None if seed is None else seed + 1)
    lam = g1 / (g1 + g2)
    order = tf.random.shuffle(tf.range(batch), seed=seed)
    lam_x = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
    lam_y = tf.reshape(lam, [-1, 1])
    mixed_x = lam_x * x + (1 - lam_x) * tf.gather(x, order)
    mixed_y = lam_y * y + (1 - lam_y) * tf.gather(y, order)
    return mixed_x, mixed_y
