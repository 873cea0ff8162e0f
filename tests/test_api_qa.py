"""``POST /v1/qa`` through httpx against the ASGI app, over the tiny fixture reader.

The tiny reader's answers are not meant to be right; these tests check what the route
promises whatever the model says: offsets into the caller's passages, ordering, the
no-answer threshold, and a clear 4xx naming the field for every bad input. The bundled
reader's quality is measured by ``python -m training qa evaluate``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import model_store
from app.main import create_app
from app.settings import Settings, get_settings
from training import publishing
from training.tasks.qa import config as qa_config
from training.tasks.qa import head as qa_head

SETTINGS = get_settings()
QUESTION = "中国的首都是哪里？"
PASSAGES = ["北京是中华人民共和国的首都，也是全国的政治中心和文化中心。", "上海是中国最大的经济中心。"]


@pytest.fixture(scope="module")
def qa_root(tiny_qa_store):
    """A store holding only the tiny reader."""
    return tiny_qa_store


@pytest.fixture(scope="module")
def qa_client(qa_root):
    with TestClient(create_app(Settings(model_root=qa_root))) as client:
        yield client


@pytest.fixture(scope="module")
def always_answering_client(qa_root):
    with TestClient(create_app(Settings(model_root=qa_root, qa_answer_threshold=0.0))) as client:
        yield client


def _check_offsets(body: dict, passages: list[str]) -> None:
    for candidate in body["candidates"]:
        assert passages[candidate["passage_index"]][candidate["start"] : candidate["end"]] == candidate["answer"]
        assert 0 <= candidate["score"] <= 1 and 0 <= candidate["probability"] <= 1
    first, *rest = body["candidates"]
    ranks = [c["score"] if c["evidence"] is None else c["evidence"] for c in body["candidates"]]  # Answer.rank
    assert ranks[1:] == sorted(ranks[1:], reverse=True)
    by_score = sorted(body["candidates"], key=lambda c: c["score"])
    assert np.all(np.diff([c["probability"] for c in by_score]) >= -1e-6)  # calibration keeps the order (up to rounding)
    if rest and ranks[0] < ranks[1]:  # a span inside the best one, put first (prefer_nested)
        outer = rest[0]
        assert outer["passage_index"] == first["passage_index"] and outer["start"] <= first["start"] <= first["end"] <= outer["end"]


def test_traditional_characters_get_the_same_answers_in_the_callers_characters(always_answering_client):
    """Read as their Simplified form (jieba and the reader), answered from the caller's text."""
    traditional = ["北京是中華人民共和國的首都，也是全國的政治中心和文化中心。", "上海是中國最大的經濟中心。"]
    request = {"question": QUESTION, "passages": PASSAGES, "num_candidates": 3}
    simplified = always_answering_client.post("/v1/qa", json=request).json()
    body = always_answering_client.post("/v1/qa", json={**request, "question": "中國的首都是哪裡？", "passages": traditional}).json()
    _check_offsets(body, traditional)
    positions = [(c["passage_index"], c["start"], c["end"], c["score"]) for c in body["candidates"]]
    assert positions == [(c["passage_index"], c["start"], c["end"], c["score"]) for c in simplified["candidates"]]


def test_answer_is_the_best_candidate_with_offsets_into_its_passage(always_answering_client):
    response = always_answering_client.post("/v1/qa", json={"question": QUESTION, "passages": PASSAGES, "num_candidates": 3})
    assert response.status_code == 200
    body = response.json()
    assert 1 <= len(body["candidates"]) <= 3 and body["model_version"] == 1
    best = body["candidates"][0]
    assert (body["answer"], body["passage_index"], body["start"], body["end"], body["score"], body["probability"]) == (
        best["answer"], best["passage_index"], best["start"], best["end"], best["score"], best["probability"]
    )
    _check_offsets(body, PASSAGES)


def test_sum_ranks_an_answer_by_every_passage_that_holds_it(always_answering_client):
    passages = [PASSAGES[0], PASSAGES[0]]  # the same passage twice: each text's evidence is at least twice its score
    body = always_answering_client.post(
        "/v1/qa", json={"question": QUESTION, "passages": passages, "num_candidates": 5, "aggregate": "sum"}
    ).json()
    candidates = body["candidates"]
    assert len({c["answer"] for c in candidates}) == len(candidates)  # one candidate per text
    assert all(c["evidence"] >= 2 * c["score"] - 1e-5 for c in candidates)
    rest = [c["evidence"] for c in candidates[1:]]
    assert rest == sorted(rest, reverse=True)
    assert all(passages[c["passage_index"]][c["start"] : c["end"]] == c["answer"] for c in candidates)
    default = always_answering_client.post("/v1/qa", json={"question": QUESTION, "passages": passages}).json()
    assert default == body  # sum is the default
    by_score = always_answering_client.post("/v1/qa", json={"question": QUESTION, "passages": passages, "aggregate": "max"}).json()
    assert all(c["evidence"] is None for c in by_score["candidates"])


@pytest.mark.parametrize("ratio", [None, 0.05])
def test_the_service_answers_what_evaluation_measures(qa_root, tmp_path, ratio):
    # The manifest's decoding (a span inside the best one first) is applied as evaluate applies it.
    root = tmp_path / "models"
    shutil.copytree(qa_root, root)
    version_dir = root / "qa" / "1"
    publishing.update_manifest(version_dir, decoding={"nested_answer_ratio": ratio})
    measured = qa_head.answer_all(qa_head.saved_model_predictor(version_dir), qa_config.config_of_export(version_dir), [QUESTION], [PASSAGES])[0]
    with TestClient(create_app(Settings(model_root=root, qa_answer_threshold=0.0))) as client:
        body = client.post("/v1/qa", json={"question": QUESTION, "passages": PASSAGES, "num_candidates": 5}).json()
    assert [(c["answer"], c["start"]) for c in body["candidates"]] == [(a.text, a.start) for a in measured]


def test_a_best_span_below_the_threshold_is_no_answer(qa_root):
    with TestClient(create_app(Settings(model_root=qa_root, qa_answer_threshold=1.0))) as client:
        body = client.post("/v1/qa", json={"question": QUESTION, "passages": PASSAGES}).json()
    assert body["answer"] is None and body["passage_index"] is None and body["start"] is None
    assert body["candidates"] and body["score"] == body["candidates"][0]["score"]


@pytest.mark.parametrize(("min_probability", "answered"), [(0.0, True), (1.0, False)])
def test_min_probability_overrides_the_default_threshold(qa_client, min_probability, answered):
    body = qa_client.post(
        "/v1/qa", json={"question": QUESTION, "passages": PASSAGES, "min_probability": min_probability}
    ).json()
    assert (body["answer"] is not None) == answered
    assert body["probability"] == body["candidates"][0]["probability"]


def test_the_default_threshold_is_the_models_own(qa_client, qa_root):
    """Without APP_QA_ANSWER_THRESHOLD or min_probability, the threshold fitted with the model's
    calibration decides, and GET /v1/models shows it."""
    manifest = model_store.read_manifest(qa_root / "qa" / "1")
    calibration = manifest["calibration"]
    (described,) = [m for m in qa_client.get("/v1/models").json()["models"] if m["task"] == "qa"]
    assert described["calibration"]["answer_threshold"] == calibration["answer_threshold"]
    assert "thresholds" not in described["calibration"] and described["decoding"] == manifest["decoding"]
    body = qa_client.post("/v1/qa", json={"question": QUESTION, "passages": PASSAGES}).json()
    assert (body["answer"] is not None) == (body["probability"] >= calibration["answer_threshold"])


@pytest.mark.parametrize("min_probability", [-0.1, 1.5, "0.5", True, None])
def test_min_probability_must_be_a_number_in_0_1(qa_client, min_probability):
    payload = {"question": QUESTION, "passages": PASSAGES, "min_probability": min_probability}
    response = qa_client.post("/v1/qa", json=payload)
    if min_probability is None:  # null: the default threshold
        assert response.status_code == 200
    else:
        assert response.status_code == 422 and "min_probability" in response.text


@pytest.mark.parametrize(
    "passages",
    [
        ["長江全長約6300公里，是中國第一長河。"],  # Traditional Chinese
        ["Emoji 😀🎉 and digits ２０２６ and Latin text here."],
        ["\x00\x07控制字符\t和𠀀𪚥罕见字"],
        ["字" * SETTINGS.max_passage_chars, "短"],  # many windows
    ],
)
def test_unusual_text_keeps_offsets_right(always_answering_client, passages):
    response = always_answering_client.post("/v1/qa", json={"question": "什么？😀", "passages": passages})
    assert response.status_code == 200
    _check_offsets(response.json(), passages)


def test_the_largest_request_allowed_is_answered(always_answering_client):
    """Every passage at its limit: more windows than the batcher's queue holds, still answered."""
    passages = ["北京是中国的首都。" * (SETTINGS.max_passage_chars // 9)] * SETTINGS.max_passages
    response = always_answering_client.post("/v1/qa", json={"question": QUESTION, "passages": passages})
    assert response.status_code == 200, response.json()
    _check_offsets(response.json(), passages)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "", "passages": PASSAGES}, "question"),
        ({"question": "  \n", "passages": PASSAGES}, "question"),
        ({"question": "问" * (SETTINGS.max_question_chars + 1), "passages": PASSAGES}, "question"),
        ({"question": 7, "passages": PASSAGES}, "question"),
        ({"passages": PASSAGES}, "question"),
        ({"question": QUESTION, "passages": []}, "passages"),
        ({"question": QUESTION}, "passages"),
        ({"question": QUESTION, "passages": "北京"}, "passages"),
        ({"question": QUESTION, "passages": ["短"] * (SETTINGS.max_passages + 1)}, "passages"),
        ({"question": QUESTION, "passages": ["ok", "字" * (SETTINGS.max_passage_chars + 1)]}, "passages.1"),
        ({"question": QUESTION, "passages": ["ok", 3]}, "passages.1"),
        ({"question": QUESTION, "passages": ["ok", ""]}, "passages.1"),
        ({"question": QUESTION, "passages": PASSAGES, "num_candidates": 0}, "num_candidates"),
        ({"question": QUESTION, "passages": PASSAGES, "num_candidates": 11}, "num_candidates"),
        ({"question": QUESTION, "passages": PASSAGES, "num_candidates": True}, "num_candidates"),
        ({"question": QUESTION, "passages": PASSAGES, "top": 1}, "top"),
        ({"question": QUESTION, "passages": PASSAGES, "aggregate": "mean"}, "aggregate"),
    ],
)
def test_bad_requests_name_the_field(qa_client, body, field):
    response = qa_client.post("/v1/qa", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert field in [f["field"] for f in error["fields"]], error


def test_no_model_loaded_is_503(tmp_path):
    with TestClient(create_app(Settings(model_root=tmp_path))) as client:
        response = client.post("/v1/qa", json={"question": QUESTION, "passages": PASSAGES})
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
