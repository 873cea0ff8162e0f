"""Normalisation, offsets and BIO handling shared by training and serving."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data.ner import TaggedSentence, join_entity_lists, split_long
from app.tasks.chinese_script import SIMPLIFIED_IN_USE, TABLE_PATH, written_in_traditional
from app.tasks.text import codepoints_of, encode_texts
from training.data.tags import Span, as_bio, bio_to_spans, spans_to_tags

# Any Unicode text that is valid UTF-8 (JSON can carry lone surrogates; the API rejects them).
unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("ＡＢＣ１２３", "abc123"),
        ("Hello　World", "hello world"),
        ("北京\t上海\x00", "北京 上海 "),
        ("ｉＰｈｏｎｅ１５", "iphone15"),
        ("Ωmega é 😀", "Ωmega é 😀"),  # only ASCII letters are lower-cased, as in the corpora
        ("新華社北京電國務院總理李鵬", "新华社北京电国务院总理李鹏"),  # Traditional characters read as Simplified
        ("頭髮與發現", "头发与发现"),
        ("乾隆、哪吒", "乾隆、哪吒"),  # Simplified characters that are also in OpenCC's table stay
        ("𠀀𠁞", "𠀀𠀾"),  # beyond the Basic Multilingual Plane too
    ],
)
def test_normalisation(raw, normalised):
    codepoints = codepoints_of([raw])[0].numpy().tolist()
    assert "".join(map(chr, codepoints)) == normalised


@settings(max_examples=200, deadline=None)
@given(unicode_text)
def test_one_code_point_per_character_so_offsets_are_the_callers(text):
    codepoints = codepoints_of([text])[0].numpy()
    assert len(codepoints) == len(text)
    assert (codepoints > 0).all(), "0 is reserved for padding"


def test_encoded_batch_is_padded_and_never_empty():
    encoded = encode_texts(["ab", ""]).numpy()
    assert encoded.shape == (2, 3)
    assert encoded[1].tolist() == [0, 0, 0]


def test_invalid_utf8_decodes_to_replacement_character():
    import tensorflow as tf

    from app.tasks.text import texts_to_codepoints

    assert texts_to_codepoints(tf.constant([b"a\xffb"]))[0].numpy().tolist() == [ord("a"), 0xFFFD, ord("b")]


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [Span("PER", 0, 2), Span("LOC", 3, 4)]),
        (["I-ORG", "I-ORG", "O"], [Span("ORG", 0, 2)]),  # I- without B- starts an entity
        (["B-PER", "I-LOC", "I-LOC"], [Span("PER", 0, 1), Span("LOC", 1, 3)]),  # type change splits
        (["B-PER", "B-PER"], [Span("PER", 0, 1), Span("PER", 1, 2)]),
        ([], []),
    ],
)
def test_bio_to_spans(tags, spans):
    assert bio_to_spans(tags) == spans


span_lists = st.lists(st.tuples(st.sampled_from(["PER", "LOC", "ORG"]), st.integers(1, 4), st.integers(0, 3)), max_size=5)


@given(span_lists, st.sampled_from(["BIO", "BIOES"]))
def test_spans_round_trip_through_tags(pieces, scheme):
    spans, position = [], 0
    for label, width, gap in pieces:
        position += gap
        spans.append(Span(label, position, position + width))
        position += width
    tags = spans_to_tags(position + 1, spans, scheme)
    assert bio_to_spans(as_bio(t) for t in tags) == spans


def test_bioes_tags():
    spans = [Span("PER", 0, 1), Span("LOC", 1, 4)]
    assert spans_to_tags(5, spans, "BIOES") == ["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"]
    assert [as_bio(t) for t in spans_to_tags(5, spans, "BIOES")] == spans_to_tags(5, spans)


@given(st.lists(st.sampled_from(list("我们在北京。！？；a")), max_size=120), st.integers(5, 30))
def test_split_long_keeps_text_and_entities(chars, limit):
    text = "".join(chars)
    tags = ["B-LOC" if c == "北" else "I-LOC" if c == "京" and i and text[i - 1] == "北" else "O" for i, c in enumerate(text)]
    sentence = TaggedSentence(text, tuple(tags))
    pieces = split_long(sentence, limit)
    assert "".join(p.text for p in pieces) == text
    assert [t for p in pieces for t in p.tags] == tags
    assert sum(len(p.spans) for p in pieces) == len(sentence.spans)


def test_join_entity_lists_drops_only_separators_between_entities():
    tags = ("B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "O", "B-LOC")
    sentence = TaggedSentence("李鹏、乔石、日本、和、法", tags)
    joined = join_entity_lists(sentence)
    assert joined.text == "李鹏乔石日本、和、法"
    assert [(s.label, joined.text[s.start : s.end]) for s in joined.spans] == [
        ("PER", "李鹏"), ("PER", "乔石"), ("LOC", "日本"), ("LOC", "法"),
    ]
    assert join_entity_lists(TaggedSentence("李鹏和乔石", ("B-PER", "I-PER", "O", "B-PER", "I-PER"))) is None


def test_the_traditional_table_is_opencc_s_character_conversion():
    """The committed table is what ``python -m app.tasks.chinese_script`` writes."""
    opencc = pytest.importorskip("opencc")
    t2s = opencc.OpenCC("t2s").convert
    pairs = [line.split("\t") for line in TABLE_PATH.read_text(encoding="utf-8").splitlines()]
    assert len(pairs) > 5000
    assert all(t2s(traditional) == simplified and traditional not in SIMPLIFIED_IN_USE for traditional, simplified in pairs)


@pytest.mark.parametrize(
    ("text", "traditional"),
    [
        ("針對圖像分割中存在的問題，提出了一種基於深度學習的方法。", True),
        ("针对图像分割中存在的问题，提出了一种基于深度学习的方法。", False),
        # an abstract quoting one Traditional title (short texts are ambiguous: 3 of 24 would pass)
        ("以《後漢書》为例，研究了古籍数字化中异体字的自动识别问题，提出一种基于字形特征与上下文语言模型的识别方法，实验表明该方法的准确率优于现有方法。", False),
        ("Deep learning for image segmentation", False),
    ],
)
def test_which_texts_are_written_in_traditional_characters(text, traditional):
    assert written_in_traditional(text) is traditional


def test_bigram_sentences_are_the_keys_the_bigram_lookup_sees():
    from training.data.word2vec import bigram_sentences
    from training.layers.char_bigrams import CODEPOINT_BASE

    north, capital = ord("北"), ord("京")
    # The bigram starting at each character; the last one pairs with "no character" (0).
    assert bigram_sentences(["北京", "北"]) == [
        [str(north * CODEPOINT_BASE + capital), str(capital * CODEPOINT_BASE)], [str(north * CODEPOINT_BASE)],
    ]
