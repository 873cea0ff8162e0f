"""Keras layers written for the served models, one concept per module."""

from training.layers.char_bigrams import CharBigrams, bigram_keys
from training.layers.crf import CRF, CRFNegativeLogLikelihood
from training.layers.token_dropout import TokenDropout

__all__ = ["CRF", "CRFNegativeLogLikelihood", "CharBigrams", "bigram_keys", "TokenDropout"]
