"""Text normalisation shared by training, evaluation and the exported serving graph.

Everything here is written with TensorFlow ops so that the very same functions
run while building training tensors and inside the exported SavedModel: the two
can never drift apart, and TensorFlow Serving gets a model that takes raw UTF-8.

Normalisation maps one code point to exactly one code point. Offsets into the
normalised sequence are therefore offsets into the caller's original string
(counted in Unicode code points, as Python's ``str`` counts them), and no
separate offset map needs to be carried around.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from app.tasks.chinese_script import simplify_codepoints

PAD_CODEPOINT = 0
REPLACEMENT_CHARACTER = 0xFFFD

_FULLWIDTH_FIRST, _FULLWIDTH_LAST = 0xFF01, 0xFF5E  # ！ .. ～
_FULLWIDTH_TO_ASCII = 0xFEE0
_IDEOGRAPHIC_SPACE = 0x3000


def normalize_codepoints(codepoints: tf.Tensor, lowercase: bool = True) -> tf.Tensor:
    """Normalise Unicode code points the way the training corpora were normalised.

    Traditional Chinese characters become Simplified (:mod:`app.tasks.chinese_script`),
    full-width ASCII becomes half-width, the ideographic space becomes a space,
    ASCII letters are lower-cased (unless ``lowercase`` is false: a generator
    that copies Latin words into its output keeps their case), and control
    characters become a space (which also keeps code point 0 free to mean padding).
    """
    cp = simplify_codepoints(codepoints)
    cp = tf.where((cp >= _FULLWIDTH_FIRST) & (cp <= _FULLWIDTH_LAST), cp - _FULLWIDTH_TO_ASCII, cp)
    cp = tf.where(cp == _IDEOGRAPHIC_SPACE, 0x20, cp)
    if lowercase:
        cp = tf.where((cp >= 0x41) & (cp <= 0x5A), cp + 0x20, cp)
    cp = tf.where((cp < 0x20) | (cp == 0x7F), 0x20, cp)
    return cp


def texts_to_codepoints(texts: tf.Tensor, lowercase: bool = True) -> tf.RaggedTensor:
    """UTF-8 strings ``[N]`` → normalised code points, ragged ``[N, (len)]``.

    Invalid UTF-8 decodes to U+FFFD rather than failing.
    """
    ragged = tf.strings.unicode_decode(
        texts, "UTF-8", errors="replace", replacement_char=REPLACEMENT_CHARACTER
    )
    return tf.ragged.map_flat_values(lambda cp: normalize_codepoints(cp, lowercase), ragged)


def encode_texts(texts: tf.Tensor, lowercase: bool = True) -> tf.Tensor:
    """UTF-8 strings ``[N]`` → normalised code points ``[N, L + 1]``, padded with 0.

    One padding column is always appended so that the time axis is never empty
    (an empty string would otherwise give a zero-length sequence).
    """
    dense = texts_to_codepoints(texts, lowercase).to_tensor(default_value=PAD_CODEPOINT)
    return tf.pad(dense, [[0, 0], [0, 1]])


def codepoints_of(texts: Sequence[str], lowercase: bool = True) -> tf.RaggedTensor:
    """Python strings → normalised code points (ragged), via :func:`texts_to_codepoints`."""
    return texts_to_codepoints(tf.constant([t.encode("utf-8") for t in texts], dtype=tf.string), lowercase)
