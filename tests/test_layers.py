"""Small layers: lexicon features, character bigrams, residual blocks — shapes, masking, config."""

from __future__ import annotations

import numpy as np
import pytest

from training.layers import CharBigrams, TokenDropout, bigram_keys
from training.layers.char_bigrams import CODEPOINT_BASE
from training.layers.lexicon import POSITIONS, LexiconFeatures
from training.layers.residual_conv1d import ResidualConv1D
from app.tasks.text import codepoints_of

LEXICON = {"word": ["北京", "会见"], "person": ["李鹏", "李"], "place": ["北京市", "北京"]}


def _features(texts: list[str]) -> tuple[np.ndarray, list[str]]:
    layer = LexiconFeatures(LEXICON, max_word_length=4)
    names = [f"{p}-{c}" for p in POSITIONS for c in LEXICON]
    return layer(codepoints_of(texts).to_tensor()).numpy(), names


def test_lexicon_marks_begin_middle_end_and_single():
    features, names = _features(["李鹏在北京市会见"])
    on = lambda i: {n for n, v in zip(names, features[0, i]) if v}  # noqa: E731
    assert on(0) == {"B-person", "S-person"}
    assert on(1) == {"E-person"}
    assert on(2) == set()
    assert on(3) == {"B-word", "B-place"}
    assert on(4) == {"M-place", "E-word", "E-place"}
    assert on(5) == {"E-place"}


def test_lexicon_never_matches_into_padding():
    padded, _ = _features(["北京", "李鹏在北京市会见"])
    alone, _ = _features(["北京"])
    np.testing.assert_array_equal(padded[0, :2], alone[0, :2])
    assert not padded[0, 2:].any()


def test_lexicon_config_round_trip():
    layer = LexiconFeatures(LEXICON, max_word_length=3, name="lexicon")
    clone = LexiconFeatures.from_config(layer.get_config())
    assert clone.lexicon == LEXICON and clone.max_word_length == 3


def test_bigram_keys_are_unique_and_zero_on_padding():
    keys = bigram_keys(np.array([[ord("北"), ord("京"), 0]], dtype=np.int32)).numpy()
    assert keys[0, 0].tolist() == [ord("北"), ord("北") * CODEPOINT_BASE + ord("京")]
    assert keys[0, 1].tolist() == [ord("北") * CODEPOINT_BASE + ord("京"), ord("京") * CODEPOINT_BASE]
    assert keys[0, 2].tolist() == [0, 0]
    assert CharBigrams().compute_output_shape((None, 7)) == (None, 7, 2)


@pytest.mark.parametrize(("filters", "strides"), [(8, 1), (16, 2)])
def test_residual_block_shape_and_config(filters, strides):
    block = ResidualConv1D(filters, 5, strides=strides)
    out = block(np.zeros((2, 40, 8), np.float32))
    assert tuple(out.shape) == (2, 40 // strides, filters)
    assert ResidualConv1D.from_config(block.get_config()).filters == filters


def test_token_dropout_hides_only_real_ids_and_only_in_training():
    ids = np.tile(np.array([[5, 6, 7, 8, 9, 0, 0]]), (64, 1))
    layer = TokenDropout(0.5, oov_id=1, mask_id=0, seed=3)
    dropped = layer(ids, training=True).numpy()
    assert set(np.unique(dropped[:, :5])) <= {1, 5, 6, 7, 8, 9}
    assert 0.3 < (dropped[:, :5] == 1).mean() < 0.7
    assert (dropped[:, 5:] == 0).all()
    np.testing.assert_array_equal(layer(ids).numpy(), ids)
    assert TokenDropout.from_config(layer.get_config()).get_config() == layer.get_config()


def test_emoji_fold_to_one_symbol_and_nothing_else_moves():
    from training.layers import EmojiFolding

    text = "张三😀去了北京❤️👨‍👩‍👧！ok"
    codepoints = np.array([[ord(c) for c in text] + [0, 0]], dtype="int32")
    folded = EmojiFolding()(codepoints).numpy()[0]
    expected = ["\ufffd" if c in "😀❤\ufe0f👨\u200d👩👧" else c for c in text]
    assert "".join(map(chr, folded[: len(text)])) == "".join(expected)
    assert folded[len(text):].tolist() == [0, 0]
