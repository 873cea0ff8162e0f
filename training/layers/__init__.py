"""Keras layers written for the served models, one concept per module."""

from training.layers.attention import MemoryAttention
from training.layers.attention_pooling import AttentionPooling1D
from training.layers.char_bigrams import CharBigrams, bigram_keys
from training.layers.copy_prior import CopyPrior
from training.layers.crf import CRF, CRFNegativeLogLikelihood
from training.layers.emoji_folding import EmojiFolding
from training.layers.gated_conv import GatedDilatedResidualConv1D
from training.layers.pointer import PointerMixture
from training.layers.position_embedding import SinusoidalPositionEmbedding
from training.layers.token_dropout import TokenDropout

__all__ = [
    "AttentionPooling1D",
    "CRF",
    "CRFNegativeLogLikelihood",
    "CharBigrams",
    "CopyPrior",
    "EmojiFolding",
    "GatedDilatedResidualConv1D",
    "MemoryAttention",
    "PointerMixture",
    "SinusoidalPositionEmbedding",
    "TokenDropout",
    "bigram_keys",
]
