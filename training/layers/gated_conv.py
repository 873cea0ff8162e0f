"""Gated dilated residual 1-D convolution, the building block of DGCNN."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class GatedDilatedResidualConv1D(keras.layers.Layer):
    """``h = x·(1−σ) + conv(x)·σ`` where one dilated convolution yields both ``conv(x)`` and the gate ``σ``.

    The residual form lets the gate choose, per position and channel, how much of
    the input to keep; dilation widens the receptive field without pooling.
    Padded positions are zeroed before the convolution, so they never leak into
    real ones, and zeroed again on the way out.
    """

    def __init__(self, kernel_size: int = 3, dilation_rate: int = 1, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.dropout = dropout
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        self.conv = keras.layers.Conv1D(
            2 * channels, self.kernel_size, dilation_rate=self.dilation_rate, padding="same", name="conv"
        )
        self.conv.build(input_shape)
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, x, mask=None, training=None):
        keep = 1.0 if mask is None else ops.expand_dims(ops.cast(mask, x.dtype), -1)
        x = x * keep
        value, gate = ops.split(self.conv(x), 2, axis=-1)
        gate = ops.sigmoid(gate)
        value = self.drop(value, training=training)
        return (x * (1.0 - gate) + value * gate) * keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "dropout": self.dropout,
        }
