"""``POST /v1/headline`` through httpx against the ASGI app, over the tiny fixture seq2seq.

The tiny model's headlines are not meant to be good; these tests check what the route
promises whatever the model says: ranked candidates, the truncation flag, batching of
requests with different beam widths, and a clear 4xx naming the field for every bad input.
The bundled model's quality is measured by ``python -m training headline evaluate``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings, get_settings
from app.tasks.chinese_script import to_traditional

SETTINGS = get_settings()
# Written for the README (in no data file).
EXAMPLE_ABSTRACT = "针对无线传感器网络中节点能量有限的问题,提出一种基于分簇的能量均衡路由协议,仿真结果表明该协议延长了网络寿命."
ABSTRACT = "针对图像分割中存在的问题,提出了一种基于深度学习的图像分割方法.实验结果表明,所提方法的性能优于现有方法."


@pytest.fixture(scope="module")
def headline_client(tiny_headline_store):
    """The service over a store holding only the tiny headline model."""
    with TestClient(create_app(Settings(model_root=tiny_headline_store))) as client:
        yield client


def test_an_abstract_in_traditional_characters_gets_its_headlines_in_them(headline_client):
    """The model learned from Simplified abstracts: one written in Traditional characters is read
    as its Simplified form, so it gets the same candidates, written back in Traditional ones."""
    traditional = "針對圖像分割中存在的問題,提出了一種基於深度學習的圖像分割方法.實驗結果表明,所提方法的性能優於現有方法."
    assert len(traditional) == len(ABSTRACT)
    request = {"num_candidates": 2}
    simplified = headline_client.post("/v1/headline", json={**request, "text": ABSTRACT}).json()
    body = headline_client.post("/v1/headline", json={**request, "text": traditional}).json()
    assert [c["score"] for c in body["candidates"]] == [c["score"] for c in simplified["candidates"]]
    assert [c["text"] for c in body["candidates"]] == [to_traditional(c["text"]) for c in simplified["candidates"]]
    assert body["headline"] == body["candidates"][0]["text"]


def test_headline_with_ranked_candidates(headline_client):
    response = headline_client.post("/v1/headline", json={"text": ABSTRACT, "num_candidates": 3})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert len(body["candidates"]) == 3 and body["model_version"] == 1
    assert body["headline"] == body["candidates"][0]["text"]
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True) and all(c["log_prob"] <= 0 for c in body["candidates"])
    assert body["truncated"] is False and body["chars_read"] == len(ABSTRACT)


def test_defaults_come_from_the_manifest(headline_client):
    body = headline_client.post("/v1/headline", json={"text": ABSTRACT}).json()
    assert len(body["candidates"]) == 1
    greedy = headline_client.post("/v1/headline", json={"text": ABSTRACT, "beam_width": 1, "max_length": 3}).json()
    assert len(greedy["headline"]) <= 3


def test_long_text_is_truncated_and_says_so(headline_client):
    text = "长" * SETTINGS.max_text_chars
    body = headline_client.post("/v1/headline", json={"text": text}).json()
    max_source = headline_client.get("/v1/models").json()
    assert body["truncated"] is True and 0 < body["chars_read"] < len(text), (body, max_source)


@pytest.mark.parametrize("text", ["😀🎉 ＡＢＣ全角", "\x00\x07控制字符\t和𠀀𪚥罕见字", "字", "SVM在NLP中的应用"])
def test_unusual_text_never_crashes(headline_client, text):
    assert headline_client.post("/v1/headline", json={"text": text, "num_candidates": 2}).status_code == 200


def test_concurrent_requests_with_different_settings_each_get_their_own(headline_client):
    requests = [{"text": ABSTRACT, "beam_width": w, "num_candidates": w, "max_length": 5 + w} for w in (1, 2, 3, 4)] * 3
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda body: headline_client.post("/v1/headline", json=body), requests))
    for body, response in zip(requests, responses):
        assert response.status_code == 200
        assert len(response.json()["candidates"]) == body["num_candidates"]
        assert all(len(c["text"]) <= body["max_length"] for c in response.json()["candidates"])
    by_width = {}
    for body, response in zip(requests, responses):  # the same request always gets the same answer
        by_width.setdefault(body["beam_width"], set()).add(response.json()["headline"])
    assert all(len(answers) == 1 for answers in by_width.values())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": " \n\t"}, "text"),
        ({"text": "长" * (SETTINGS.max_text_chars + 1)}, "text"),
        ({"text": 5}, "text"),
        ({"text": ["a"]}, "text"),
        ({"text": "We propose an energy-balanced routing protocol for wireless sensor networks."}, "text"),
        ({"text": "12345 67890"}, "text"),
        ({"text": "😀🎉 ＡＢＣ"}, "text"),
        ({}, "text"),
        ({"text": ABSTRACT, "num_candidates": 0}, "num_candidates"),
        ({"text": ABSTRACT, "num_candidates": SETTINGS.max_beam_width + 1}, "num_candidates"),
        ({"text": ABSTRACT, "num_candidates": 3, "beam_width": 2}, "num_candidates"),
        ({"text": ABSTRACT, "beam_width": 0}, "beam_width"),
        ({"text": ABSTRACT, "beam_width": SETTINGS.max_beam_width + 1}, "beam_width"),
        ({"text": ABSTRACT, "beam_width": "wide"}, "beam_width"),
        ({"text": ABSTRACT, "max_length": 0}, "max_length"),
        ({"text": ABSTRACT, "max_length": SETTINGS.max_headline_tokens + 1}, "max_length"),
        ({"text": ABSTRACT, "max_length": True}, "max_length"),  # not 1 (found by schemathesis)
        ({"text": ABSTRACT, "beam_width": "4"}, "beam_width"),
        ({"text": ABSTRACT, "temperature": 1.0}, "temperature"),
    ],
)
def test_bad_requests_name_the_field(headline_client, body, field):
    response = headline_client.post("/v1/headline", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert field in [f["field"] for f in error["fields"]], error


def test_no_model_loaded_is_503(tmp_path):
    with TestClient(create_app(Settings(model_root=tmp_path))) as client:
        response = client.post("/v1/headline", json={"text": ABSTRACT})
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"


def test_bundled_model_titles_the_readme_example(client):
    """The README's curl example against the bundled model: a title built from the abstract's words."""
    response = client.post("/v1/headline", json={"text": EXAMPLE_ABSTRACT, "num_candidates": 3})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert len(body["candidates"]) == 3 and len({c["text"] for c in body["candidates"]}) == 3
    assert "路由协议" in body["headline"]
