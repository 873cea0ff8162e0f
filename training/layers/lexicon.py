"""Lexicon-match features for character taggers, computed in the graph.

For every character and every lexicon category, four binary features say
whether the character Begins, is in the Middle of, Ends, or Singly forms a
lexicon word found in the text (the "softword"/SoftLexicon idea: word
knowledge without a segmenter at inference). The lexicon is baked into an
exported SavedModel as the sorted 64-bit fingerprints of its words: a third
of the size of string tables with their values (jieba's 314,000 words took
7 MB as ``StringLookup`` tables), and at ~10^5 words a false match has a
chance of ~10^-14 per lookup.
"""

from __future__ import annotations

import keras
import tensorflow as tf

POSITIONS = ("B", "M", "E", "S")


def _shift_left(x: tf.Tensor, steps: int, fill) -> tf.Tensor:
    """``x[:, i + steps]`` at position ``i`` (``fill`` past the end), same length as ``x``."""
    length = tf.shape(x)[1]
    padding = [[0, 0], [0, steps]] + [[0, 0]] * (len(x.shape) - 2)
    return tf.pad(x[:, steps:], padding, constant_values=fill)[:, :length]


def _shift_right(x: tf.Tensor, steps: int) -> tf.Tensor:
    """``x[:, i - steps]`` at position ``i`` (zeros before the start), same length as ``x``."""
    length = tf.shape(x)[1]
    padding = [[0, 0], [steps, 0]] + [[0, 0]] * (len(x.shape) - 2)
    return tf.pad(x, padding)[:, :length]


def _fingerprint(strings: tf.Tensor) -> tf.Tensor:
    # The empty string (a gram running past the end) gets a fingerprint too; `whole` masks it.
    return tf.strings.to_hash_bucket_fast(strings, 2**63 - 1)


@keras.saving.register_keras_serializable(package="training")
class LexiconFeatures(keras.layers.Layer):
    """Code points ``[B, L]`` (0 = padding) → ``[B, L, 4 × categories]`` lexicon-match features.

    ``lexicon`` maps each category name to its (already normalised) words;
    words longer than ``max_word_length`` characters are never matched.
    """

    def __init__(self, lexicon: dict[str, list[str]], max_word_length: int, **kwargs):
        super().__init__(**kwargs)
        self.lexicon = lexicon
        self.max_word_length = max_word_length
        self.fingerprints = [tf.sort(_fingerprint(tf.constant(words or [""], tf.string))) for words in lexicon.values()]

    def build(self, input_shape):
        # No weights: the fingerprints are constants.
        self.built = True

    def _matches(self, grams: tf.Tensor) -> tf.Tensor:
        """``[..., categories]``: whether each gram is a word of each category."""
        keys = _fingerprint(grams)
        hits = []
        for table in self.fingerprints:
            at = tf.minimum(tf.searchsorted(table, tf.reshape(keys, [-1])), tf.size(table) - 1)
            hits.append(tf.reshape(tf.gather(table, at), tf.shape(keys)) == keys)
        return tf.stack(hits, axis=-1)

    def call(self, codepoints):
        codepoints = tf.cast(codepoints, tf.int32)
        valid = codepoints > 0
        # unicode_encode needs a static shape, so encode a flat column and fold it back.
        flat = tf.reshape(tf.where(valid, codepoints, 0x20), [-1, 1])
        chars = tf.reshape(tf.strings.unicode_encode(flat, "UTF-8"), tf.shape(codepoints))
        begin = middle = end = single = None
        for width in range(1, self.max_word_length + 1):
            gram = tf.strings.join([_shift_left(chars, j, "") for j in range(width)])
            # Masks are prefixes, so the span is valid when its last character is.
            whole = _shift_left(valid, width - 1, False)
            hits = self._matches(gram) & whole[..., None]
            hits = tf.cast(hits, tf.float32)
            if width == 1:
                single = hits
                continue
            begin = hits if begin is None else begin + hits
            end = _shift_right(hits, width - 1) if end is None else end + _shift_right(hits, width - 1)
            for j in range(1, width - 1):
                middle = _shift_right(hits, j) if middle is None else middle + _shift_right(hits, j)
        parts = [begin, middle if middle is not None else tf.zeros_like(single), end, single]
        return tf.concat([tf.minimum(p, 1.0) for p in parts], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape, len(POSITIONS) * len(self.lexicon))

    def get_config(self):
        return {**super().get_config(), "lexicon": self.lexicon, "max_word_length": self.max_word_length}
