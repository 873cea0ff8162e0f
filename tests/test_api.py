"""The HTTP API over the bundled models, through httpx against the ASGI app."""

from __future__ import annotations

import pytest

from app.settings import get_settings

EXAMPLE = "新华社北京电国务院总理李鹏今天会见了日本客人。"


def _entities(body: dict) -> set[tuple[str, str, int, int]]:
    return {(e["type"], e["text"], e["start"], e["end"]) for e in body["entities"]}


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert "ner" in ready.json()["models"]


def test_model_catalogue_reports_version_metrics_and_signature(client):
    catalogue = client.get("/v1/models").json()
    models = {m["model"]: m for m in catalogue["models"] if m["task"] == "ner"}
    assert set(models) == {"ner", "ner-fine"}
    assert {m["model"]: m["default"] for m in catalogue["served"] if m["task"] == "ner"} == {"ner": True, "ner-fine": False}
    assert models["ner-fine"]["metrics"]["cluener_dev"]["f1"] > 0
    assert models["ner-fine"]["calibration"]["temperature"] > 1  # its CRF was over-confident
    ner = models["ner"]
    assert ner["version"] >= 1
    assert ner["metrics"]["msra_test"]["f1"] > 0
    assert "text" in ner["signature"]["inputs"]


def test_readme_example(client):
    response = client.post("/v1/ner", json={"text": EXAMPLE})
    assert response.status_code == 200
    body = response.json()
    entities = _entities(body)
    assert ("PER", "李鹏", 11, 13) in entities
    assert ("LOC", "北京", 3, 5) in entities
    assert body["model_version"] >= 1 and 0 < body["confidence"] <= 1


@pytest.mark.parametrize("model", ["ner", "ner-fine"])
def test_offsets_point_into_a_social_media_post_as_sent(client, model):
    """Emoji (one code point or a joined sequence), an @mention, a hashtag, a URL, full-width Latin
    and repeated punctuation are read one code point for one: every entity's offsets cut its text
    out of the post exactly as it was sent."""
    post = "@王小明 今天在北京见到了刘德华😍😍👨\u200d👩\u200d👧！！！#演唱会# 太激动了ｈｔｔｐ://t.cn/Ａ8ｘ 腾讯新闻"
    body = client.post("/v1/ner", json={"text": post, "model": model}).json()
    assert body["entities"], body
    for entity in body["entities"]:
        assert post[entity["start"] : entity["end"]] == entity["text"]


def test_the_fine_grained_model_answers_when_named(client):
    text = "我在京东买了一本《三体》，顺丰快递送到了北京市海淀区。"
    body = client.post("/v1/ner", json={"text": text, "model": "ner-fine"}).json()
    assert body["model"] == "ner-fine"
    types = {e["type"] for e in body["entities"]}
    assert types <= {"address", "book", "company", "game", "government", "movie", "name", "organization", "position", "scene"}
    # CLUENER marks a book with its title marks.
    assert {("book", "《三体》"), ("address", "北京市海淀区")} <= {(e["type"], e["text"]) for e in body["entities"]}
    assert all(0 < e["probability"] <= 1 and text[e["start"] : e["end"]] == e["text"] for e in body["entities"])


def test_traditional_characters_are_read_as_simplified(client):
    """The corpora are Simplified; the graph maps Traditional characters one to one, so a text
    written in either script gets the same entities at the same offsets, in the caller's own
    characters."""
    traditional = "新華社北京電國務院總理李鵬今天會見了日本客人。"
    assert len(traditional) == len(EXAMPLE)
    simplified = _entities(client.post("/v1/ner", json={"text": EXAMPLE}).json())
    entities = _entities(client.post("/v1/ner", json={"text": traditional}).json())
    assert {(kind, start, end) for kind, _, start, end in entities} == {(kind, start, end) for kind, _, start, end in simplified}
    assert ("ORG", "國務院", 6, 9) in entities


def test_each_entity_has_its_probability_and_doubtful_ones_can_be_dropped(client):
    body = client.post("/v1/ner", json={"text": EXAMPLE}).json()
    probabilities = [e["probability"] for e in body["entities"]]
    # Each entity's marginal is at least the probability of the whole best path, which holds it.
    assert probabilities and all(body["confidence"] - 1e-5 <= p <= 1 for p in probabilities)
    threshold = sorted(probabilities)[len(probabilities) // 2]
    kept = client.post("/v1/ner", json={"text": EXAMPLE, "min_probability": threshold}).json()["entities"]
    assert kept == [e for e in body["entities"] if e["probability"] >= threshold]
    batch = client.post("/v1/ner", json={"texts": [EXAMPLE], "min_probability": 1.0}).json()["results"][0]
    assert all(e["probability"] >= 1.0 for e in batch["entities"])
    for bad in (1.5, -0.1, False, "0.5", None):
        assert client.post("/v1/ner", json={"text": EXAMPLE, "min_probability": bad}).status_code == 422, bad


def test_batch_equals_one_by_one(client):
    texts = [EXAMPLE, "张三在上海的复旦大学工作。", "今天天气很好。"]
    batch = client.post("/v1/ner", json={"texts": texts}).json()["results"]
    singles = [client.post("/v1/ner", json={"text": t}).json() for t in texts]
    assert [_entities(r) for r in batch] == [_entities(s) for s in singles]


@pytest.mark.parametrize(
    "text",
    [
        "😀😀" + EXAMPLE,  # emoji before the entities
        "ＡＢＣ" + EXAMPLE + "１２３",  # full-width Latin and digits
        "\x00\x07\t" + EXAMPLE,  # control characters
        "𠀀𪚥" + EXAMPLE,  # rare CJK outside the BMP
        "e\u0301" + EXAMPLE,  # combining accent
        "Hello, World 2024! " + EXAMPLE,
    ],
)
def test_unseen_characters_keep_offsets_into_the_original_text(client, text):
    response = client.post("/v1/ner", json={"text": text})
    assert response.status_code == 200
    entities = response.json()["entities"]
    assert entities, "the example sentence still has entities"
    for entity in entities:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    assert any(e["type"] == "PER" and e["text"] == "李鹏" for e in entities)


LONG = "字" * 2001


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"text": ""}, 422, "text"),
        ({"text": "   \n\t"}, 422, "text"),
        ({"text": LONG}, 422, "text"),
        ({"text": 42}, 422, "text"),
        ({"text": None}, 422, "text"),  # leave the other field out, do not send null
        ({}, 422, "body"),
        ({"text": "a", "texts": ["b"]}, 422, "body"),
        ({"texts": []}, 422, "texts"),
        ({"texts": ["ok", ""]}, 422, "texts.1"),
        ({"texts": ["ok"] * 65}, 422, "texts"),
        ({"texts": "not a list"}, 422, "texts"),
        ({"text": "ok", "extra": 1}, 422, "extra"),
        ([1, 2], 422, "body"),
    ],
)
def test_bad_json_bodies_name_the_field(client, body, status, field):
    response = client.post("/v1/ner", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert field in [f["field"] for f in error["fields"]], error
    assert error["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 422),
        (b'{"text": "\\ud800"}', "application/json", 422),  # lone surrogate: valid JSON, invalid Unicode
        (b"text=hello", "application/x-www-form-urlencoded", 422),
        (b"\xff\xfe", "application/json", 400),
        (b'{"text": "\xff abc"}', "application/json", 400),  # not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),  # deeper than the parser goes
    ],
)
def test_bodies_that_are_not_usable_json(client, content, content_type, status):
    response = client.post("/v1/ner", content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.json()["error"]["fields"][0]["field"] in {"body", "text"}


def test_json_sent_as_a_form_says_which_header_is_missing(client):
    """What `curl -d '{...}'` without `-H 'content-type: application/json'` sends."""
    response = client.post("/v1/ner", content='{"text": "李鹏"}'.encode(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422
    assert "Content-Type: application/json" in response.json()["error"]["message"]


LIMIT = get_settings().max_body_bytes


def test_oversize_body_is_rejected_with_413(client):
    response = client.post("/v1/ner", content=b'{"text": "' + b"a" * LIMIT + b'"}', headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["fields"] == [{"field": "body", "message": "request body too large"}]


def test_oversize_chunked_body_without_content_length_is_rejected(client):
    def chunks():
        for _ in range(LIMIT // 50_000 + 2):
            yield b"a" * 50_000

    response = client.post("/v1/ner", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_route_and_method(client):
    assert client.get("/v1/nope").json()["error"]["code"] == "not_found"
    assert client.get("/v1/ner").status_code == 405


def test_request_id_is_echoed_or_assigned(client):
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    # Anything but a plain id (it goes into logs and headers) is replaced by one of the server's.
    for offered in ("a b", "x" * 129, "id\u00e9", "a\\n{}", ""):
        echoed = client.get("/healthz", headers={"x-request-id": offered.encode("utf-8")}).headers["x-request-id"]
        assert echoed != offered and len(echoed) == 32


def test_openapi_documents_examples(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/ner"]["post"]
    assert operation["responses"]["200"]["content"]["application/json"]["example"]["entities"]
    schema_name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert spec["components"]["schemas"][schema_name]["examples"]


def test_the_schema_and_the_server_agree_on_blank_text():
    """The OpenAPI pattern for "not blank" rejects exactly what the server strips away."""
    import re

    from app.validation import NOT_BLANK

    for codepoint in range(0x110000):
        if 0xD800 <= codepoint < 0xE000:
            continue
        assert (re.search(NOT_BLANK, chr(codepoint)) is None) == chr(codepoint).isspace(), hex(codepoint)
