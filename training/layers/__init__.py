"""Keras layers written for the served models, one concept per module."""

from training.layers.char_bigrams import CharBigrams, bigram_keys
from training.layers.crf import CRF, CRFNegativeLogLikelihood

__all__ = ["CRF", "CRFNegativeLogLikelihood", "CharBigrams", "bigram_keys"]
