"""A 1-D residual block (two convolutions, batch norm, projection shortcut when the shape changes)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="training")
class ResidualConv1D(keras.layers.Layer):
    def __init__(self, filters: int, kernel_size: int = 5, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.conv1 = keras.layers.Conv1D(filters, kernel_size, strides=strides, padding="same", use_bias=False)
        self.norm1 = keras.layers.BatchNormalization()
        self.conv2 = keras.layers.Conv1D(filters, kernel_size, padding="same", use_bias=False)
        self.norm2 = keras.layers.BatchNormalization()
        self.shortcut = None

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.shortcut = keras.layers.Conv1D(self.filters, 1, strides=self.strides, use_bias=False)
            self.shortcut.build(input_shape)
        self.conv1.build(input_shape)
        shape = self.conv1.compute_output_shape(input_shape)
        self.norm1.build(shape)
        self.conv2.build(shape)
        self.norm2.build(shape)

    def call(self, x, training=None):
        y = keras.ops.relu(self.norm1(self.conv1(x), training=training))
        y = self.norm2(self.conv2(y), training=training)
        return keras.ops.relu(y + (self.shortcut(x) if self.shortcut is not None else x))

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides}
