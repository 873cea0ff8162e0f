"""Tries to get in: missing, unknown, malformed and misplaced keys, keys without the scope, brute
force, quotas, leaks of keys and paths; and the policy without a keys file (``make run``)."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from app.keys import main as keys_command
from app.keys import read_keys
from app.main import create_app
from app.settings import Settings
from tests.conftest import write_keys_file

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): an app per access-control setting

SPECTRUM = {"spectra": [[1.0 + 0.01 * (i % 7) for i in range(3904)]]}
SCOPES = {
    "ops": ["admin"],
    "reader": ["predict"],
    "ner-only": ["predict:ner"],
    "prometheus": ["metrics"],
    "metered": ["predict"],
}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    return path, write_keys_file(path, SCOPES, rate_limits={"metered": "3/minute"})


@pytest.fixture(scope="module")
def keys(keys_file) -> dict[str, str]:
    return keys_file[1]


@pytest.fixture()
def app_client(tiny_spectra_store, keys_file):
    """A fresh app each test (fresh in-memory counters), keys file configured."""
    settings = Settings(model_root=tiny_spectra_store, api_keys_file=keys_file[0], auth_failure_limit="5/minute")
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


def test_reload_needs_an_admin_key(app_client, keys):
    reload = "/v1/models/spectra/reload"
    response = app_client.post(reload)
    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = app_client.post(reload, headers=bearer(keys["reader"]))
    assert_error(response, 403, "forbidden")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert app_client.post(reload, headers=bearer(keys["ops"])).status_code == 200
    assert app_client.post(reload, headers={"X-API-Key": keys["ops"]}).status_code == 200


def test_predictions_need_a_key_with_the_task(app_client, keys):
    assert_error(app_client.post("/v1/spectra", json=SPECTRUM), 401, "unauthenticated")
    assert_error(app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["ner-only"])), 403, "forbidden")
    assert_error(app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["ops"])), 403, "forbidden")
    assert app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["reader"])).status_code == 200
    files = {"files": ("x.fits", b"not fits")}
    assert_error(app_client.post("/v1/spectra/fits", files=files), 401, "unauthenticated")


def test_an_authorised_caller_gets_what_an_open_service_answers(app_client, keys, tiny_spectra_store):
    with TestClient(create_app(Settings(model_root=tiny_spectra_store))) as open_client:
        expected = open_client.post("/v1/spectra", json=SPECTRUM).json()
    assert app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["reader"])).json() == expected


def test_the_catalogue_needs_any_key_and_metrics_their_scope(app_client, keys):
    assert_error(app_client.get("/v1/models"), 401, "unauthenticated")
    assert app_client.get("/v1/models", headers=bearer(keys["ner-only"])).status_code == 200
    assert_error(app_client.get("/metrics", headers=bearer(keys["reader"])), 403, "forbidden")
    assert app_client.get("/metrics", headers=bearer(keys["prometheus"])).status_code == 200
    for open_path in ("/healthz", "/readyz", "/", "/docs", "/openapi.json"):
        assert app_client.get(open_path).status_code == 200, open_path


@pytest.mark.parametrize(
    "headers, params",
    [
        ({}, {"api_key": "KEY"}),  # keys in URLs end up in logs and browser history: not read
        ({}, {"key": "KEY"}),
        ({"Authorization": "KEY"}, {}),
        ({"Authorization": "Basic KEY"}, {}),
        ({"Authorization": "Bearer"}, {}),
        ({"Authorization": "Bearer "}, {}),
        ({"X-API-Key": ""}, {}),
        ({"X-API-Key": "KEY-and-more"}, {}),
        ({"Authorization": "Bearer \u00e9\u00e9"}, {}),
    ],
)
def test_misplaced_or_malformed_keys_are_refused(app_client, keys, headers, params):
    key = keys["reader"]
    headers = {k: v.replace("KEY", key).encode("utf-8") for k, v in headers.items()}
    params = {k: v.replace("KEY", key) for k, v in params.items()}
    response = app_client.post("/v1/spectra", json=SPECTRUM, headers=headers, params=params)
    assert_error(response, 401, "unauthenticated")


def test_unauthenticated_callers_are_refused_before_the_body_is_read(app_client):
    """A caller without a key must not make the server parse its body (it would learn nothing
    but could spend the server's CPU): 401, not 400 for the broken JSON."""
    response = app_client.post("/v1/spectra", content=b"{" * 100_000, headers={"content-type": "application/json"})
    assert_error(response, 401, "unauthenticated")


def test_guessing_keys_from_one_address_is_slowed_down(app_client, keys):
    for i in range(5):
        assert_error(app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(f"msk_guess{i}")), 401, "unauthenticated")
    blocked = app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer("msk_guess5"))
    assert_error(blocked, 429, "rate_limited")
    assert int(blocked.headers["retry-after"]) >= 1
    # A right key from the same address is answered: wrong guesses must not lock its owner out.
    assert app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["reader"])).status_code == 200
    assert_error(app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer("msk_guess6")), 429, "rate_limited")


def test_a_key_over_its_quota_gets_429_with_retry_after(app_client, keys):
    remaining = []
    for _ in range(3):
        response = app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["metered"]))
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "3"
        remaining.append(int(response.headers["ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    over = app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["metered"]))
    body = assert_error(over, 429, "rate_limited")
    assert "3 per minute" in body["error"]["message"]
    assert 1 <= int(over.headers["retry-after"]) <= 60 and over.headers["ratelimit-remaining"] == "0"
    # Another key is not affected.
    assert app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["reader"])).status_code == 200


def test_keys_never_reach_logs_or_error_bodies(app_client, keys, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = []
    for key in (keys["reader"], keys["ops"], "msk_wrong-key-123"):
        for headers in (bearer(key), {"X-API-Key": key}):
            bodies.append(app_client.post("/v1/models/spectra/reload", headers=headers).text)
            bodies.append(app_client.post("/v1/spectra", json={"spectra": []}, headers=headers).text)
    text = caplog.text + "".join(bodies)
    for key in (*keys.values(), "msk_wrong-key-123"):
        assert key not in text
    assert any(getattr(r, "key_id", None) == "ops" for r in caplog.records)  # the id is logged


def test_admin_actions_are_audited(app_client, keys, caplog):
    caplog.set_level(logging.INFO, logger="app.audit")
    app_client.post("/v1/models/spectra/reload", headers=bearer(keys["ops"]))
    app_client.post("/v1/models/spectra/reload", headers=bearer(keys["reader"]))
    app_client.post("/v1/models/nope/reload", headers=bearer(keys["ops"]))
    audit = [(r.key_id, r.address, r.action, r.outcome) for r in caplog.records if r.name == "app.audit"]
    assert audit == [  # every line names the address, denials included
        ("ops", "testclient", "reload", "succeeded"),
        ("reader", "testclient", "/v1/models/spectra/reload", "missing scope"),
        ("ops", "testclient", "reload", "not_found"),
    ]


def test_responses_carry_no_server_paths(app_client, keys, tiny_spectra_store):
    catalogue = app_client.get("/v1/models", headers=bearer(keys["reader"])).text
    missing = app_client.post("/v1/models/spectra/reload", json={"version": 9}, headers=bearer(keys["ops"]))
    assert missing.status_code == 404
    for text in (catalogue, missing.text, app_client.get("/readyz").text):
        assert str(tiny_spectra_store) not in text and "/tmp" not in text


def test_the_openapi_schema_declares_both_key_schemes(app_client):
    schema = app_client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    operation = schema["paths"]["/v1/spectra"]["post"]
    assert {name for requirement in operation["security"] for name in requirement} == set(schemes)
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_security_headers(app_client, keys):
    page = app_client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    api = app_client.post("/v1/spectra", json=SPECTRUM, headers=bearer(keys["reader"]))
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in api.headers["content-security-policy"]


def test_cors_only_for_listed_origins(tiny_spectra_store):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(Settings(model_root=tiny_spectra_store))) as client:
        assert "access-control-allow-origin" not in client.options("/v1/spectra", headers=preflight).headers
    settings = Settings(model_root=tiny_spectra_store, cors_origins=["https://app.example"])
    with TestClient(create_app(settings)) as client:
        allowed = client.options("/v1/spectra", headers={**preflight, "Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in client.options("/v1/spectra", headers=preflight).headers


def test_without_a_keys_file_predictions_are_open_and_admin_closed(tiny_spectra_store):
    with TestClient(create_app(Settings(model_root=tiny_spectra_store))) as client:
        assert client.post("/v1/spectra", json=SPECTRUM).status_code == 200
        assert client.get("/v1/models").status_code == 200
        body = assert_error(client.post("/v1/models/spectra/reload"), 403, "forbidden")
        assert "APP_API_KEYS_FILE" in body["error"]["message"] and "python -m app.keys create" in body["error"]["message"]


def test_anonymous_callers_are_limited_per_address(tiny_spectra_store):
    with TestClient(create_app(Settings(model_root=tiny_spectra_store, anonymous_rate_limit="2/minute"))) as client:
        assert [client.post("/v1/spectra", json=SPECTRUM).status_code for _ in range(3)] == [200, 200, 429]


def test_two_apps_in_one_process_keep_their_own_keys_and_limits(tiny_spectra_store, keys_file, keys):
    keyed = Settings(model_root=tiny_spectra_store, api_keys_file=keys_file[0])
    limited = Settings(model_root=tiny_spectra_store, anonymous_rate_limit="2/minute", max_batch_spectra=1)
    two_spectra = {"spectra": SPECTRUM["spectra"] * 2}
    with TestClient(create_app(keyed)) as first, TestClient(create_app(limited)) as second:
        assert first.post("/v1/spectra", json=SPECTRUM).status_code == 401
        assert first.post("/v1/spectra", json=two_spectra, headers=bearer(keys["reader"])).status_code == 200
        assert second.post("/v1/spectra", json=SPECTRUM).status_code == 200
        refused = second.post("/v1/spectra", json=two_spectra)
        assert refused.status_code == 422 and refused.json()["error"]["fields"][0]["field"] == "spectra"
        assert second.post("/v1/spectra", json=SPECTRUM).status_code == 429
        # Each app's schema states its own limit.
        max_items = [
            client.get("/openapi.json").json()["components"]["schemas"]["SpectraRequest"]["properties"]["spectra"]["maxItems"]
            for client in (first, second)
        ]
        assert max_items == [Settings().max_batch_spectra, 1]


def test_keys_created_and_revoked_take_effect_without_a_restart(tiny_spectra_store, tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert keys_command(["create", "--id", "first", "--scopes", "predict", "--file", str(path)]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    with TestClient(create_app(Settings(model_root=tiny_spectra_store, api_keys_file=path))) as client:
        assert client.post("/v1/spectra", json=SPECTRUM, headers=bearer(first)).status_code == 200
        assert keys_command(["create", "--id", "second", "--scopes", "predict:spectra", "--rate-limit", "5/second", "--file", str(path)]) == 0
        second = capsys.readouterr().out.strip().splitlines()[-1]
        assert keys_command(["revoke", "--id", "first", "--file", str(path)]) == 0
        time.sleep(1.1)  # the file is re-read at most once a second
        assert client.post("/v1/spectra", json=SPECTRUM, headers=bearer(first)).status_code == 401
        assert client.post("/v1/spectra", json=SPECTRUM, headers=bearer(second)).status_code == 200
        path.write_text("{ not json")  # a broken edit keeps the last good keys
        time.sleep(1.1)
        assert client.post("/v1/spectra", json=SPECTRUM, headers=bearer(second)).status_code == 200


def test_the_keys_command_stores_hashes_only(tmp_path, capsys):
    path = tmp_path / "keys.yaml"
    assert keys_command(["create", "--id", "ci", "--scopes", "predict", "admin", "--file", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    key = out[-1]
    assert len(out) == 1 and key.startswith("msk_") and len(key) > 40  # alone on its last line
    assert key not in path.read_text() and (path.stat().st_mode & 0o077) == 0
    [entry] = read_keys(path)
    assert entry.id == "ci" and entry.scopes == {"predict", "admin"}
    assert keys_command(["create", "--id", "ci", "--scopes", "predict", "--file", str(path)]) == 1  # ids are unique
    assert keys_command(["list", "--file", str(path)]) == 0
    assert capsys.readouterr().out.startswith("ci\tadmin,predict")
    assert keys_command(["revoke", "--id", "ci", "--file", str(path)]) == 0 and read_keys(path) == []


@pytest.mark.parametrize(
    "content, message",
    [
        ("keys: [{id: a, key: msk_x, sha256: " + "a" * 64 + ", scopes: [predict]}]", "unknown fields"),
        ("keys: [{id: a, sha256: abc, scopes: [predict]}]", "sha256"),
        ("keys: [{id: a, sha256: " + "a" * 64 + ", scopes: [root]}]", "scopes"),
        ("keys: [{id: a, sha256: " + "a" * 64 + ", scopes: [predict], rate_limit: lots}]", "rate_limit"),
        ("keys: {", "not valid"),
    ],
)
def test_a_bad_keys_file_stops_the_service_with_a_reason(tiny_spectra_store, tmp_path, content, message):
    from app.keys import KeysFileError

    path = tmp_path / "keys.yaml"
    path.write_text(content)
    with pytest.raises(KeysFileError, match=message):
        create_app(Settings(model_root=tiny_spectra_store, api_keys_file=path))


def test_the_docs_pages_can_be_turned_off(tiny_spectra_store):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(model_root=tiny_spectra_store, docs=False))) as client:
        assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").status_code == 200  # clients and code generators keep the schema


def test_the_redis_password_comes_from_its_file_not_the_url(tmp_path):
    from app.access import _storage_uri
    from app.settings import Settings

    (tmp_path / "password").write_text("s3cr/t@pw\n")
    settings = Settings(rate_limit_storage="redis://redis:6379/0", rate_limit_storage_password_file=tmp_path / "password")
    assert _storage_uri(settings) == "redis://:s3cr%2Ft%40pw@redis:6379/0"
    assert _storage_uri(Settings(rate_limit_storage="memory://")) == "memory://"
