"""Per-spectrum flux normalisation inside the model, so callers may send any flux scale."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="training")
class SpectrumNormalization(keras.layers.Layer):
    """Divides each spectrum by the mean |flux| of its unmasked (non-zero) pixels, then clips.

    Masked pixels are 0 and stay 0. Clipping bounds the effect of cosmic rays
    and garbage spikes.
    """

    def __init__(self, clip: float = 20.0, **kwargs):
        super().__init__(**kwargs)
        self.clip = clip

    def call(self, flux):
        flux = tf.cast(flux, tf.float32)
        valid = tf.cast(flux != 0, tf.float32)
        scale = tf.reduce_sum(tf.abs(flux), axis=-1, keepdims=True) / tf.maximum(
            tf.reduce_sum(valid, axis=-1, keepdims=True), 1.0
        )
        return tf.clip_by_value(flux / tf.maximum(scale, 1e-12), -self.clip, self.clip)

    def get_config(self):
        return {**super().get_config(), "clip": self.clip}
