"""The Python client (``clients/python``) against the real service on a loopback port: every
method, every error class the service can be made to answer, retries after 503 + Retry-After
and after broken connections, bulk jobs (progress, resume, CSV), the command line, and a schema
test that fails when a response field of the service is missing from the client's models."""

from __future__ import annotations

import asyncio
import csv
import json
import socket

import httpx
import numpy as np
import pytest

from bench.serve import Server
from model_serving_client import (
    AsyncClient, AuthenticationFailed, BadRequest, Client, ConnectionFailed, InvalidRequest, NotFound,
    PermissionDenied, RateLimited, RequestTooLarge, ServiceUnavailable, bulk, types,
)
from model_serving_client._core import api_error
from model_serving_client.cli import main as cli
from model_serving_client.errors import ERRORS_BY_STATUS, APIError, ServerError, error_class
from tests.conftest import write_keys_file
from tests.fixtures.spectrum_files import write_desi_coadd, write_lamost_image, write_sdss_spec_lite
from app.tasks.spectra.grid import LAMOST

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): starts real servers

QUESTION, PASSAGES = "中国的首都是哪里？", ["北京是中华人民共和国的首都。", "上海是中国最大的经济中心。"]
ABSTRACT = "针对无线传感器网络中节点能量有限的问题,提出一种基于分簇的能量均衡路由协议,仿真结果表明该协议延长了网络寿命."
FLUX = np.array([1.0 + 0.01 * (i % 7) for i in range(LAMOST.npix)], dtype=np.float32)
MAX_BODY_BYTES = 1_000_000  # over the FITS fixtures (≤ 331 KB), under 40 spectra written out as numbers


@pytest.fixture(scope="module")
def server():
    """The bundled models, open (no keys file); headline's queue holds one request, so that a
    second one at the same time is refused with 503 + Retry-After."""
    env = {
        "APP_BATCHING": json.dumps({"headline": {"max_queue": 1, "max_wait_ms": 0}}),
        "APP_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    with Server(env) as running:
        yield running


@pytest.fixture(scope="module")
def served_answer(server) -> str:
    """The bundled reader's answer to QUESTION over plain HTTP: what the client must hand back
    (which span the reader picks is the model's business, measured by `qa evaluate`)."""
    response = httpx.post(f"{server.url}/v1/qa", json={"question": QUESTION, "passages": PASSAGES}, timeout=30)
    answer = response.raise_for_status().json()["answer"]
    assert answer and answer.startswith("北京")
    return answer


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url) as c:
        yield c


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("client_keys") / "keys.yaml"
    secrets = write_keys_file(path, {"ops": ["admin"], "reader": ["predict"], "metered": ["predict"]}, {"metered": "1/minute"})
    return path, secrets


@pytest.fixture(scope="module")
def keyed_server(keys, tiny_spectra_store):
    with Server({"APP_API_KEYS_FILE": str(keys[0]), "APP_MODEL_ROOT": str(tiny_spectra_store)}) as running:
        yield running


@pytest.fixture
def fits_folder(tmp_path):
    folder = tmp_path / "fits"
    (folder / "night2").mkdir(parents=True)
    write_lamost_image(folder / "lamost.fits")
    write_sdss_spec_lite(folder / "night2" / "spec.fits")
    write_sdss_spec_lite(folder / "spec.fits")  # the same name in another folder
    write_desi_coadd(folder / "coadd.fits", nspec=2)
    (folder / "broken.fits").write_bytes(b"SIMPLE  =                    T" + bytes(100))
    return folder


# Every method


def test_ner_one_text_and_several(client):
    one = client.ner("李鹏在北京")
    assert isinstance(one, types.NERResponse) and one.model_version >= 1
    assert [(e.type, e.text, e.start, e.end) for e in one.entities] == [("PER", "李鹏", 0, 2), ("LOC", "北京", 3, 5)]
    assert all(0 < e.probability <= 1 for e in one.entities)
    several = client.ner(["李鹏在北京", "上海"], min_probability=0.5)
    assert isinstance(several, types.NERBatchResponse) and len(several.results) == 2


def test_qa(client, served_answer):
    answer = client.qa(QUESTION, PASSAGES, num_candidates=3)
    assert isinstance(answer, types.QAResponse) and answer.answer == served_answer
    assert 0 < answer.probability <= 1 and len(answer.candidates) <= 3
    assert client.qa(QUESTION, PASSAGES, min_probability=1.0).answer is None
    summed = client.qa(QUESTION, PASSAGES, aggregate="sum")
    assert all(c.evidence is not None for c in summed.candidates)


def test_headline(client):
    answer = client.headline(ABSTRACT, num_candidates=2)
    assert isinstance(answer, types.HeadlineResponse) and answer.headline == answer.candidates[0].text
    assert len(answer.candidates) == 2


@pytest.mark.parametrize(
    "spectrum",
    [FLUX, FLUX.tolist(), {"wavelength": LAMOST.wavelength.tolist(), "flux": FLUX.tolist()}],
    ids=["numpy", "list", "own grid"],
)
@pytest.mark.parametrize("encode", [True, False], ids=["base64", "numbers"])
def test_spectra_in_every_form_get_the_same_answer(client, spectrum, encode):
    answer = client.spectra([spectrum], encode=encode)
    assert isinstance(answer, types.SpectraResponse) and len(answer.results) == 1
    reference = client.spectra([FLUX.tolist()], encode=False).results[0]
    assert answer.results[0].label == reference.label
    assert answer.results[0].probabilities == pytest.approx(reference.probabilities, abs=1e-4)


def test_spectra_files(client, fits_folder):
    answer = client.spectra_files([fits_folder / "lamost.fits", ("coadd.fits", (fits_folder / "coadd.fits").read_bytes())])
    assert isinstance(answer, types.FitsResponse)
    assert [r.file for r in answer.results] == ["lamost.fits", "coadd.fits", "coadd.fits"]
    assert all(isinstance(r, types.FileSpectrumResult) for r in answer.results)


def test_models(client):
    catalogue = client.models()
    assert {m.task for m in catalogue.models} == {"ner", "qa", "headline", "spectra"}
    (qa,) = [m for m in catalogue.models if m.task == "qa"]
    assert qa.metrics["cmrc_dev"]["f1"] > 0


def test_async_client_shares_the_methods(server, served_answer):
    async def main():
        async with AsyncClient(server.url) as client:
            return await asyncio.gather(client.ner("李鹏在北京"), client.qa(QUESTION, PASSAGES), client.models())

    ner, qa, catalogue = asyncio.run(main())
    assert ner.entities[0].text == "李鹏" and qa.answer == served_answer and catalogue.models


# Errors


def test_an_invalid_field_is_named(client):
    with pytest.raises(InvalidRequest) as caught:
        client.ner(["李鹏", "   "])
    error = caught.value
    assert error.status == 422 and error.code == "invalid_request" and error.request_id
    assert [f.field for f in error.fields] == ["texts.1"]


def test_a_body_over_the_limit(client):
    with pytest.raises(RequestTooLarge) as caught:
        client.spectra([FLUX] * 40, encode=False)  # about 3 MB of JSON numbers
    assert caught.value.status == 413 and caught.value.fields[0].field == "body"


def test_malformed_json_is_a_bad_request(server):
    response = httpx.post(f"{server.url}/v1/ner", content=b"{not json", headers={"content-type": "application/json"})
    error = api_error(response)
    assert isinstance(error, BadRequest) and error.code and error.message


def test_admin_actions_without_keys_configured_are_refused(client):
    with pytest.raises(PermissionDenied):
        client.reload("ner")


def test_keys_scopes_and_quotas(keyed_server, keys):
    _, secrets = keys
    with pytest.raises(AuthenticationFailed):
        Client(keyed_server.url, api_key="", max_retries=0).spectra([FLUX])
    with pytest.raises(AuthenticationFailed):
        Client(keyed_server.url, api_key="msk_not-a-key", max_retries=0).spectra([FLUX])
    with pytest.raises(PermissionDenied):
        Client(keyed_server.url, api_key=secrets["reader"]).reload("spectra")
    admin = Client(keyed_server.url, api_key=secrets["ops"])
    assert admin.reload("spectra").task == "spectra"
    with pytest.raises(NotFound):
        admin.reload("spectra", version=99)
    metered = Client(keyed_server.url, api_key=secrets["metered"], max_retries=0)
    metered.spectra([FLUX])
    with pytest.raises(RateLimited) as caught:
        metered.spectra([FLUX])
    assert caught.value.retry_after >= 1 and "1 per minute" in caught.value.message


def test_every_status_has_its_class():
    for status, cls in ERRORS_BY_STATUS.items():
        response = httpx.Response(status, json={"error": {"code": "c", "message": "m", "fields": []}})
        error = api_error(response)
        assert type(error) is cls and isinstance(error, APIError) and (error.code, error.message) == ("c", "m")
    assert error_class(502) is ServerError and error_class(418) is APIError
    # A proxy's HTML page instead of the service's error body still gives the right class.
    proxied = api_error(httpx.Response(503, text="<html>busy</html>", headers={"Retry-After": "2"}))
    assert isinstance(proxied, ServiceUnavailable) and proxied.retry_after == 2.0


# Retries


def _concurrent_headlines(url: str, n: int, max_retries: int) -> list:
    async def main():
        async with AsyncClient(url, max_retries=max_retries) as client:
            return await asyncio.gather(*(client.headline(ABSTRACT) for _ in range(n)), return_exceptions=True)

    return asyncio.run(main())


def test_a_full_queue_is_retried_after_retry_after(server):
    refused = [r for r in _concurrent_headlines(server.url, 6, max_retries=0) if isinstance(r, Exception)]
    assert refused and all(isinstance(r, ServiceUnavailable) and r.retry_after for r in refused)
    answers = _concurrent_headlines(server.url, 6, max_retries=20)
    assert all(isinstance(a, types.HeadlineResponse) for a in answers), answers


def test_connection_errors_are_retried_then_raised():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", max_retries=2) as client, pytest.raises(ConnectionFailed, match="ConnectError"):
        client.ner("李鹏")


# Bulk jobs


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bulk_ner_writes_a_record_per_text_with_a_progress_bar(server, tmp_path, capsys):
    source = tmp_path / "texts.txt"
    texts = ["李鹏在北京", "", "上海是城市", "字" * 3000, "新华社报道"] * 10
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "entities.jsonl"
    assert cli(["--url", server.url, "bulk", "ner", str(source), str(out), "--pack-size", "16"]) == 0
    assert "ner: 100%" in capsys.readouterr().err
    records = _jsonl(out)
    assert sorted(int(r["line"]) for r in records) == [n for n, t in enumerate(texts, 1) if t.strip()]
    too_long = [r for r in records if "error" in r]
    assert len(too_long) == 10 and all("limit" in r["error"] for r in too_long)
    first = next(r for r in records if r["line"] == "1")
    assert [e["text"] for e in first["entities"]] == ["李鹏", "北京"]


def test_bulk_resumes_where_an_interrupted_run_stopped(server, tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(f"李鹏第{i}次到北京" for i in range(40)) + "\n")
    out = tmp_path / "entities.jsonl"
    bulk.run("ner", source, out, url=server.url, pack_size=8, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:13]) + lines[13][:20])  # killed while writing the 14th record
    summary = bulk.run("ner", source, out, url=server.url, pack_size=8, progress=False)
    assert (summary.skipped, summary.written, summary.failed) == (13, 27, 0)
    assert sorted(int(r["line"]) for r in _jsonl(out)) == list(range(1, 41))


def test_bulk_headlines_from_a_tsv_to_csv(server, tmp_path):
    source = tmp_path / "abstracts.tsv"
    source.write_text(f"a1\t{ABSTRACT}\na2\t{ABSTRACT[:40]}\n")
    out = tmp_path / "headlines.csv"
    summary = bulk.run("headline", source, out, url=server.url, progress=False)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert summary.written == 2 and [r["id"] for r in sorted(rows, key=lambda r: r["id"])] == ["a1", "a2"]
    assert all(r["headline"] and float(r["score"]) < 0 for r in rows)


def test_bulk_spectra_over_a_folder_of_fits_files(server, fits_folder, tmp_path):
    out = tmp_path / "spectra.jsonl"
    summary = bulk.run("spectra", fits_folder, out, url=server.url, pack_size=3, progress=False)
    records = _jsonl(out)
    by_file = {}
    for record in records:
        by_file.setdefault(record["file"], []).append(record)
    assert set(by_file) == {"lamost.fits", "night2/spec.fits", "spec.fits", "coadd.fits", "broken.fits"}
    assert len(by_file["coadd.fits"]) == 2 and by_file["lamost.fits"][0]["label"]
    assert "error" in by_file["broken.fits"][0] and summary.rejected == 1 and summary.failed == 0


def test_bulk_against_an_unreachable_service_leaves_the_inputs_for_the_next_run(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = tmp_path / "texts.txt"
    source.write_text("李鹏\n北京\n")
    out = tmp_path / "out.jsonl"
    assert cli(["--url", f"http://127.0.0.1:{port}", "bulk", "ner", str(source), str(out), "--no-progress"]) == 1
    assert not out.read_text()


# The command line


def test_the_command_line_prints_typed_json(server, capsys, served_answer):
    assert cli(["--url", server.url, "ner", "李鹏在北京"]) == 0
    assert json.loads(capsys.readouterr().out)["entities"][0]["text"] == "李鹏"
    assert cli(["--url", server.url, "qa", QUESTION, *PASSAGES]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == served_answer
    assert cli(["--url", server.url, "ner", " "]) == 2
    assert "text" in capsys.readouterr().err


def test_the_command_line_names_the_model_and_version(server, capsys):
    assert cli(["--url", server.url, "ner", "李鹏在北京", "--model", "ner"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model"] == "ner"
    assert cli(["--url", server.url, "ner", "李鹏在北京", "--version", str(answer["model_version"])]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == answer["model_version"]
    assert cli(["--url", server.url, "ner", "李鹏在北京", "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err


# The client's models against the service's schema


def _deref(schema: dict, components: dict) -> dict:
    if "$ref" in schema:
        return _deref(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    return schema


def _missing_fields(server: dict, server_defs: dict, client: dict, client_defs: dict, where: str) -> list[str]:
    """Property paths the server's schema has and the client's does not (recursively)."""
    server, client = _deref(server, server_defs), _deref(client, client_defs)
    if "anyOf" in server:
        missing = []
        for variant in server["anyOf"]:
            options = [_deref(c, client_defs) for c in client.get("anyOf", [client])]
            candidates = [_missing_fields(variant, server_defs, c, client_defs, where) for c in options]
            missing += min(candidates, key=len)
        return missing
    if "items" in server:
        return _missing_fields(server["items"], server_defs, client.get("items", {}), client_defs, f"{where}[]")
    missing = []
    for name, prop in server.get("properties", {}).items():
        if name not in client.get("properties", {}):
            missing.append(f"{where}.{name}")
        else:
            missing += _missing_fields(prop, server_defs, client["properties"][name], client_defs, f"{where}.{name}")
    return missing


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("post", "/v1/ner", types.NERResponse),
        ("post", "/v1/qa", types.QAResponse),
        ("post", "/v1/headline", types.HeadlineResponse),
        ("post", "/v1/spectra", types.SpectraResponse),
        ("post", "/v1/spectra/fits", types.FitsResponse),
        ("get", "/v1/models", types.ModelsResponse),
        ("post", "/v1/models/{model}/reload", types.ReloadResponse),
    ],
)
def test_the_client_models_every_field_the_service_answers(server, method, path, model):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    components = spec["components"]["schemas"]
    served = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    if path == "/v1/ner":  # one text or several: the client has a model for each
        served = {"anyOf": served.get("anyOf", [served])}
        ours = {"anyOf": [types.NERResponse.model_json_schema(), types.NERBatchResponse.model_json_schema()]}
        defs = {**types.NERResponse.model_json_schema().get("$defs", {}), **types.NERBatchResponse.model_json_schema().get("$defs", {})}
    else:
        ours = model.model_json_schema()
        defs = ours.get("$defs", {})
    assert _missing_fields(served, components, ours, defs, path) == []
