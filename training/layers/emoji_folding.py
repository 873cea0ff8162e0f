"""Emoji read as one symbol: every pictograph code point becomes U+FFFD, before any lookup."""

from __future__ import annotations

import keras

from app.tasks.text import REPLACEMENT_CHARACTER

# Pictographs, dingbats and their joiners and modifiers (Unicode's emoji blocks). Social-media
# text carries thousands of them, each too rare to learn; the Weibo NER corpus lost every emoji
# to U+FFFD, so that is the symbol the tagger learned a post's emoji as.
EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),  # mahjong … symbols and pictographs extended-A (faces, flags, skin tones)
    (0x2600, 0x27BF),  # miscellaneous symbols, dingbats (☀ ✈ ❤)
    (0x2B00, 0x2BFF),  # arrows and stars (⭐)
    (0xFE00, 0xFE0F),  # variation selectors (❤️ = ❤ + U+FE0F)
    (0x200D, 0x200D),  # zero-width joiner inside 👨‍👩‍👧
    (0xE0020, 0xE007F),  # tag characters of subdivision flags
)


@keras.saving.register_keras_serializable(package="training")
class EmojiFolding(keras.layers.Layer):
    """Code points ``[B, L]`` with every emoji code point replaced by U+FFFD (one for one, so
    offsets still point into the text as sent); padding and every other code point unchanged."""

    def call(self, codepoints):
        emoji = keras.ops.zeros_like(codepoints, dtype="bool")
        for first, last in EMOJI_RANGES:
            emoji = keras.ops.logical_or(
                emoji, keras.ops.logical_and(keras.ops.greater_equal(codepoints, first), keras.ops.less_equal(codepoints, last))
            )
        return keras.ops.where(emoji, keras.ops.cast(REPLACEMENT_CHARACTER, codepoints.dtype), codepoints)

    def compute_output_shape(self, input_shape):
        return input_shape
