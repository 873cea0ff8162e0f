"""The classifier: a Conv1D residual network over normalised flux; a trained run loaded back; runs
averaged into one classifier."""

from __future__ import annotations

from pathlib import Path

import keras

from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.spec import CLASSES
from training.layers.residual_conv1d import ResidualConv1D
from training.layers.spectrum_normalization import SpectrumNormalization
from training.runs import load_best
from training.tasks.spectra.config import Config


def build_model(config: Config, name: str = "spectrum_classifier") -> keras.Model:
    """Flux ``[B, 3904]`` → class probabilities ``[B, 4]``."""
    flux = keras.Input(shape=(LAMOST.npix,), dtype="float32", name="flux")
    x = SpectrumNormalization(name="normalize")(flux)
    x = keras.layers.Reshape((LAMOST.npix, 1))(x)
    x = keras.layers.Conv1D(config.filters[0], 9, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling1D(2)(x)
    for i, filters in enumerate(config.filters):
        x = ResidualConv1D(filters, config.kernel_size, strides=2, name=f"block{i}")(x)
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(x), keras.layers.GlobalMaxPooling1D()(x)])
    x = keras.layers.Dropout(config.dropout)(x)
    probabilities = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    return keras.Model(flux, probabilities, name=name)


def load_classifier(run_dir: Path, name: str = "spectrum_classifier") -> keras.Model:
    """A trained run's classifier with its best (held-out) weights."""
    return load_best(build_model(Config.of_run(run_dir), name), run_dir)


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """Trained classifiers → one whose probabilities are the members' mean."""
    flux = keras.Input(shape=(LAMOST.npix,), dtype="float32", name="flux")
    probabilities = keras.layers.Average(name="mean_probabilities")([member(flux) for member in members])
    return keras.Model(flux, probabilities, name="spectrum_classifier_ensemble")
