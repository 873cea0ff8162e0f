"""QA preprocessing and metrics: jieba alignment, windows, match features, span decoding and merging."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data.qa import read_handwritten, read_squad, read_webqa
from training.metrics import cmrc_em, cmrc_f1, cmrc_scores, webqa_score
from app.tasks.chinese_script import simplify_text, to_simplified
from app.tasks.qa.answers import Answer, best_answers, prefer_nested, trim_span
from app.tasks.qa.preprocessing import Window, model_inputs, pad_tokens, prepare, segment, windows
from training.tasks.qa.head import decode_spans


@pytest.mark.parametrize("text", ["北京是中华人民共和国的首都。", "Hello  world\t😀 ２０２０年\n", "", "繁體中文，還有 emoji 🎉"])
def test_segment_keeps_every_character(text):
    joined = "".join(segment(text))
    assert len(joined) == len(text) and joined == simplify_text(text)


def test_traditional_text_is_segmented_as_its_simplified_form():
    """jieba's dictionary is Simplified: the same words, so the same windows and offsets."""
    assert segment("北京是中華人民共和國的首都。") == segment("北京是中华人民共和国的首都。")


def _inputs(question: str, passage: str) -> dict:
    return {k: v.numpy() for k, v in model_inputs(
        tf.constant(pad_tokens([segment(question)])), tf.constant(pad_tokens([segment(passage)]))
    ).items()}


def test_words_are_repeated_over_their_characters():
    passage = "北京是中华人民共和国的首都"
    inputs = _inputs("首都", passage)
    words = [w.decode() for w in inputs["passage_words"][0, : len(passage)]]
    assert words[:3] == ["北京", "北京", "是"]
    assert words[3:10] == ["中华人民共和国"] * 7
    assert inputs["passage_words"][0, len(passage)] == b""  # the padding column
    assert "".join(map(chr, inputs["passage_chars"][0, : len(passage)])) == passage


def test_characters_and_words_are_normalised_like_the_rest_of_the_service():
    inputs = _inputs("Ａ", "ＡＢＣ")
    assert "".join(map(chr, inputs["passage_chars"][0, :3])) == "abc"
    assert inputs["passage_words"][0, 0].decode() == segment("ＡＢＣ")[0].lower().translate(
        {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
    )


def test_match_features_mark_question_characters_and_words():
    question, passage = "首都在哪里", "北京是首都，京都不是"
    inputs = _inputs(question, passage)
    char_match, word_match = inputs["passage_match"][0, : len(passage)].T
    assert np.flatnonzero(char_match).tolist() == [3, 4, 7]  # 首都, and the 都 of 京都
    assert np.flatnonzero(word_match).tolist() == [3, 4]  # only the word 首都
    assert not inputs["passage_match"][0, len(passage):].any()


def test_batched_rows_of_different_lengths_are_padded_with_nothing_that_matches():
    inputs = model_inputs(
        tf.constant(pad_tokens([["北京"], ["上海", "在", "哪"]])), tf.constant(pad_tokens([["北京", "好"], ["上海"]]))
    )
    chars = inputs["passage_chars"].numpy()
    assert chars.shape == (2, 4) and chars[1, 2:].tolist() == [0, 0]
    assert inputs["passage_match"].numpy()[:, :, 0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 4), min_size=0, max_size=60),
    max_chars=st.integers(10, 40),
    stride_share=st.floats(0.2, 0.8),
)
def test_windows_cover_the_passage_and_hold_every_short_answer(lengths, max_chars, stride_share):
    tokens = [chr(0x4E00 + i) * n for i, n in enumerate(lengths)]
    passage = "".join(tokens)
    stride = max(1, int(max_chars * stride_share))
    result = windows(tokens, max_chars, stride)
    assert result[0].offset == 0
    assert result[-1].offset + result[-1].length == len(passage)
    for window in result:
        assert window.length <= max_chars
        assert "".join(window.tokens) == passage[window.offset : window.offset + window.length]
    # Windows start and end on token boundaries, so the guarantee loses up to a token at each end.
    answer_length = max_chars - stride - 2 * max(lengths, default=1) + 3
    for start in range(len(passage) if answer_length > 0 else 0):
        end = min(len(passage), start + answer_length)
        assert any(w.offset <= start and end <= w.offset + w.length for w in result)


def test_a_token_longer_than_a_window_is_split():
    result = windows(["a" * 25, "b"], max_chars=10, stride=5)
    assert all(w.length <= 10 for w in result)
    assert "".join("".join(w.tokens) for w in result[::2]).startswith("a" * 10)


def test_prepare_cuts_the_question_and_plans_every_window():
    question_tokens, plan = prepare("中国的首都是哪里？" * 10, ["北京" * 30, "上海"], 20, 10, 16)
    assert sum(map(len, question_tokens)) <= 16
    assert {p for p, _ in plan} == {0, 1}
    assert sum(w.length for p, w in plan if p == 1) == 2


def _brute_force(start, end, max_len):
    spans = [(s, e + 1, start[s] * end[e]) for s in range(len(start)) for e in range(s, min(len(end), s + max_len))]
    return sorted(spans, key=lambda x: -x[2])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 3), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_span_decoding_matches_brute_force(length, padding, max_len, seed):
    """Best spans by brute force over the real characters; padding never yields a span."""
    rng = np.random.default_rng(seed)
    start, end = rng.uniform(size=(2, 1, length + padding)).astype("float32")
    valid = tf.constant([[True] * length + [False] * padding])
    out = {k: v.numpy()[0] for k, v in decode_spans(tf.constant(start), tf.constant(end), valid, max_len, 3).items()}
    expected = _brute_force(start[0, :length], end[0, :length], max_len)[:3]
    np.testing.assert_allclose(out["score"][: len(expected)], [s for _, _, s in expected], rtol=1e-6)
    assert (out["end"][: len(expected)] - out["start"][: len(expected)] <= max_len).all()
    assert (out["start"][: len(expected)] < out["end"][: len(expected)]).all()
    assert (out["end"][: len(expected)] <= length).all()
    assert (out["score"][len(expected):] == -1).all()


def test_best_answers_merge_windows_and_passages():
    passages = ["北京是首都。北京很大。", "首都是北京"]
    w0, w1 = Window(0, ("北京是首都。",)), Window(3, ("首都。北京很大。",))
    spans = [
        (0, w0, [0, 3], [2, 5], [0.6, 0.2]),
        (0, w1, [3, 0], [5, 2], [0.3, 0.5]),  # 北京 at 6..8 (window offset 3), and 首都 at 3..5 seen again
        (1, Window(0, ("首都是北京",)), [3], [5], [0.4]),
    ]
    best = best_answers(passages, spans, k=3)
    assert [(a.text, a.passage_index, a.start, a.end, a.score) for a in best] == [
        ("北京", 0, 0, 2, 0.6), ("首都", 0, 3, 5, 0.5), ("北京", 1, 3, 5, 0.4)
    ]
    summed = best_answers(passages, spans, k=2, aggregate="sum")
    assert [(a.text, a.passage_index, a.start) for a in summed] == [("北京", 0, 0), ("首都", 0, 3)]
    assert summed[0].evidence == pytest.approx(1.3) and summed[1].evidence == pytest.approx(0.5)
    assert [a.score for a in summed] == [0.6, 0.5]  # the best occurrence's, which the probability is of
    assert all(a.evidence is None for a in best)


# 尤金袋鼠分布在澳洲南部岛屿及西岸地区 (0..18), best first; spans inside it, one overlapping it, and one
# in another passage.
NESTED = [
    Answer("尤金袋鼠分布在澳洲南部岛屿及西岸地区", 0.5, 0, 0, 18),
    Answer("岛屿及西岸地区的", 0.3, 0, 13, 21),
    Answer("澳洲南部岛屿及西岸地区", 0.15, 0, 7, 18),
    Answer("澳洲南部", 0.1, 0, 7, 11),
    Answer("澳洲", 0.1, 1, 0, 2),
]


@pytest.mark.parametrize(
    ("ratio", "first"),
    [
        (None, "尤金袋鼠分布在澳洲南部岛屿及西岸地区"),  # off
        (0.2, "澳洲南部岛屿及西岸地区"),  # the best span inside the best one: 0.15 ≥ 0.2 · 0.5
        (0.5, "尤金袋鼠分布在澳洲南部岛屿及西岸地区"),  # … scores too little
    ],
)
def test_the_best_span_inside_the_best_one_comes_first_when_it_scores_enough(ratio, first):
    ranked = prefer_nested(NESTED, ratio)
    assert ranked[0].text == first
    assert sorted(ranked) == sorted(NESTED)  # reordered, nothing lost
    assert prefer_nested([], ratio) == []


def test_only_the_pool_is_searched_for_a_span_inside_the_best_one():
    # Asking for more candidates must not change the answer: spans ranked past the pool stay put.
    assert prefer_nested(NESTED, 0.2, pool=2) == NESTED
    assert prefer_nested(NESTED, 0.2, pool=3)[0].text == "澳洲南部岛屿及西岸地区"


def test_best_answers_skip_invalid_slots():
    window = Window(0, ("北京",))
    assert best_answers(["北京"], [(0, window, [0, 1, 0], [2, 1, 3], [-1.0, 0.5, 0.5])], k=5) == []


@pytest.mark.parametrize(
    "prediction, references, em, f1",
    [
        ("北京", ["北京"], 1.0, 1.0),
        ("北京。", ["《北京》"], 1.0, 1.0),  # punctuation is ignored
        ("北京市", ["北京"], 0.0, 0.8),  # LCS 2, P 2/3, R 1
        ("上海", ["北京", "上海市"], 0.0, 0.8),  # best reference
        ("", ["北京"], 0.0, 0.0),
        ("1963年", ["1963年"], 1.0, 1.0),
        ("in 1963", ["1963"], 0.0, 2 / 3),  # Latin runs are words
    ],
)
def test_cmrc_metric_by_hand(prediction, references, em, f1):
    assert cmrc_em(prediction, references) == em
    assert cmrc_f1(prediction, references) == pytest.approx(f1)


def test_cmrc_scores_are_percentages():
    assert cmrc_scores(["北京", "北京市"], [["北京"], ["北京"]]) == {"em": 50.0, "f1": 90.0, "questions": 2}


def test_webqa_score_by_hand():
    result = webqa_score(["纣王", "帝辛纣王", ""], [["纣王"], ["纣王"], ["纣王"]])
    # accuracy 1/3; F1 (1 + 2·0.5·1/1.5 + 0) / 3
    assert result["accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["f1"] == pytest.approx((1 + 2 / 3) / 3, abs=1e-4)
    assert result["score"] == pytest.approx((result["accuracy"] + result["f1"]) / 2, abs=1e-4)


def test_squad_reader_repairs_answer_offsets(tmp_path):
    path = tmp_path / "squad.json"
    context = "北京是首都。上海是城市。"
    qas = [
        {"id": "a", "question": "首都？", "answers": [{"text": "北京", "answer_start": 0}]},
        {"id": "b", "question": "城市？", "answers": [{"text": "上海", "answer_start": 2}]},  # off by four
        {"id": "c", "question": "？", "answers": [{"text": "广州", "answer_start": 0}]},  # not in the context
    ]
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": qas}]}]}, ensure_ascii=False))
    examples = read_squad(path)
    assert [e.answers for e in examples] == [(("北京", 0),), (("上海", 6),), ()]


def test_webqa_reader_pools_golden_answers(tmp_path):
    path = tmp_path / "webqa.json.gz"
    record = {
        "q_key": "Q1", "question_tokens": ["谁", "是", "王"],
        "evidences": [
            {"evidence_tokens": ["纣王", "是", "王"], "golden_answers": [["纣王"]]},
            {"evidence_tokens": ["无关"], "golden_answers": [["no_answer"]]},
        ],
    }
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
    (question,) = read_webqa(path)
    assert question.question == "谁是王" and question.passages == ("纣王是王", "无关") and question.answers == ("纣王",)


def test_every_handwritten_question_has_its_answer_in_a_passage():
    questions = read_handwritten()
    assert len(questions) >= 40 and len({q.question for q in questions}) == len(questions)
    for q in questions:
        assert q.answers and any(answer in passage for answer in q.answers for passage in q.passages), q.question


@pytest.mark.parametrize("seed", range(8))
def test_sentence_crops_keep_the_answer_or_leave_it_out(seed):
    import random

    from training.tasks.qa.preprocessor import sentence_crops

    passage = "第一句话。北京是中国的首都，历史悠久。第三句话！第四句话？第五句话；结尾"
    window = Window(100, tuple(segment(passage)))
    start = passage.index("北京")
    crops = sentence_crops(window, start, start + 2, random.Random(seed))
    (positive, s, e), *negatives = crops
    text = "".join(positive.tokens)
    assert text[s:e] == "北京" and "北京是中国的首都，历史悠久。" in text
    assert passage[positive.offset - 100 :].startswith(text)
    for negative, s, e in negatives:
        assert (s, e) == (-1, -1) and "北京" not in "".join(negative.tokens)
        assert passage[negative.offset - 100 :].startswith("".join(negative.tokens))


def test_squad_reader_converts_traditional_chinese(tmp_path):
    path = tmp_path / "drcd.json"
    context = "長江全長約6300公里，是中國第一長河。"
    qas = [{"id": "t", "question": "長江全長多少？", "answers": [{"text": "約6300公里", "answer_start": 4}]}]
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": qas}]}]}, ensure_ascii=False))
    (example,) = read_squad(path, to_simplified)
    assert example.context == "长江全长约6300公里，是中国第一长河。" and example.question == "长江全长多少？"
    assert example.answers == (("约6300公里", 4),)


@pytest.mark.parametrize(
    "span, answer",
    [
        ("“洗尘”", "洗尘"), ("《龙江颂》", "龙江颂"), ("“状元", "状元"), ("北京，", "北京"), ("（1）", "1"), ("，。", ""),
        ("f(x)", "f(x)"), ("《家》《春》《秋》", "《家》《春》《秋》"), ("（北京）市", "（北京）市"), ("50%", "50%"), ("U.S.", "U.S."),
    ],
)
def test_answers_lose_clause_punctuation_and_enclosing_quotes(span, answer):
    text = f"前文{span}后文"
    start, end = trim_span(text, 2, 2 + len(span))
    assert text[start:end] == answer


def test_spans_equal_once_trimmed_count_once():
    passage = "他说“洗尘”。"
    window = Window(0, tuple(passage))
    spans = [(0, window, [2, 2, 3], [7, 5, 5], [0.4, 0.3, 0.2])]  # “洗尘”。, “洗尘, 洗尘
    assert [(a.text, a.start, a.end, a.score) for a in best_answers([passage], spans, k=5)] == [("洗尘", 3, 5, 0.4)]
