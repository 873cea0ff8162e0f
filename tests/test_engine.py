"""The serving engine through the app: batching equivalence, backpressure, deadlines, failures, reload, metrics.

The app runs in-process with its lifespan (real models load and warm up) and is called
over httpx's ASGI transport. Where a test must hold a model call in flight, it wraps
the task's real batch function in a gate (a threading.Event), so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.batching import Arrivals, BatchPolicy
from app.engine import read_with_pipeline
from app.main import create_app
from app.middleware import RequestContextMiddleware
from app.settings import Settings
from tests.conftest import bundled_version, until, write_keys_file
from app.tasks.spectra.grid import LAMOST

NER_TEXTS = [
    "新华社北京电国务院总理李鹏今天会见了日本客人。",
    "张三在上海工作。",
    "🙂 Emoji 与 Latin text, 以及数字 2024 在巴黎。",
    "中国人民解放军驻香港部队",
    "王小明和李华去年夏天从广州出发，经过武汉、郑州，最后到达北京。" * 3,
    "他",
]


def flux(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    slope = rng.uniform(-2.5, 0.5)
    return (100 * (LAMOST.wavelength / 6000) ** slope + rng.normal(0, 2, LAMOST.npix)).tolist()


def store_with(tmp_path: Path, *tasks: str) -> Path:
    """A model store holding the bundled model of each task as version 1 (linked, not copied)."""
    root = tmp_path / "models"
    for task in tasks:
        (root / task).mkdir(parents=True)
        (root / task / "1").symlink_to(bundled_version(task), target_is_directory=True)
    return root


class Gate:
    """Wraps a batch function: holds each call until released, and can fail on a marked input."""

    def __init__(self, function, fails=lambda items: False):
        self.function = function
        self.fails = fails
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, model, items):
        self.entered.set()
        self.released.wait(30)
        if self.fails(items):
            raise RuntimeError("the model failed on this input")
        return self.function(model, items)


@contextlib.asynccontextmanager
async def serving(settings: Settings, **batch_functions):
    app = create_app(settings)
    for task, function in batch_functions.items():
        app.state.engine.register(task, function)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            yield app, client


@pytest.mark.parametrize(
    "task, items, body",
    [
        ("ner", NER_TEXTS, lambda text: {"text": text}),
        ("spectra", [flux(seed) for seed in range(6)], lambda row: {"spectra": [row]}),
    ],
)
def test_batched_answers_equal_one_by_one_answers(task, items, body, tmp_path):
    # A batch as large as the load and a long wait: all requests run as exactly one model call.
    policy = BatchPolicy(max_batch_size=len(items), max_wait_ms=60_000)
    settings = Settings(model_root=store_with(tmp_path, task), batching={task: policy})

    async def scenario():
        async with serving(settings) as (app, client):
            responses = await asyncio.gather(*(client.post(f"/v1/{task}", json=body(item)) for item in items))
            model = app.state.registry.get(task)
            rows = [np.asarray(item, dtype=np.float64) for item in items] if task == "spectra" else items
            alone = [model.pipeline.read([row])[0].model_dump() for row in rows]
            exposition = (await client.get("/metrics")).text
            return responses, alone, exposition

    responses, alone, exposition = asyncio.run(scenario())
    assert f'model_batch_size_count{{task="{task}"}} 1.0' in exposition
    for response, expected in zip(responses, alone):
        assert response.status_code == 200
        got = response.json() if task == "ner" else response.json()["results"][0]
        if task == "ner":
            def spans(entities):
                return [(e["type"], e["start"], e["end"]) for e in entities]

            assert spans(got["entities"]) == spans(expected["entities"])
            # float32 sums over a padded batch round differently from a batch of one.
            assert [e["probability"] for e in got["entities"]] == pytest.approx(
                [e["probability"] for e in expected["entities"]], rel=1e-3
            )
            assert got["confidence"] == pytest.approx(expected["confidence"], rel=1e-3)
        else:
            assert got["label"] == expected["label"]
            for name, p in expected["probabilities"].items():
                assert got["probabilities"][name] == pytest.approx(p, rel=1e-3, abs=1e-5)


def test_a_full_queue_answers_503_with_retry_after_at_once(tmp_path):
    policy = BatchPolicy(max_batch_size=1, max_wait_ms=0, max_queue=1)
    settings = Settings(model_root=store_with(tmp_path, "spectra"), batching={"spectra": policy})
    gate = Gate(read_with_pipeline)
    one = {"spectra": [flux(1)]}

    async def scenario():
        async with serving(settings, spectra=gate) as (app, client):
            running = asyncio.ensure_future(client.post("/v1/spectra", json=one))
            await until(gate.entered.is_set)
            queued = asyncio.ensure_future(client.post("/v1/spectra", json=one))
            await until(lambda: app.state.engine.queue_depths()["spectra"] == 1)
            refused = await client.post("/v1/spectra", json=one)
            gate.released.set()
            return refused, await running, await queued, (await client.get("/metrics")).text

    refused, running, queued, exposition = asyncio.run(scenario())
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "overloaded"
    assert running.status_code == queued.status_code == 200
    assert 'model_queue_rejections_total{task="spectra"} 1.0' in exposition


def test_a_request_past_its_deadline_gets_504(tmp_path):
    settings = Settings(model_root=store_with(tmp_path, "spectra"), request_timeout_s=0.05)
    gate = Gate(read_with_pipeline)

    async def scenario():
        async with serving(settings, spectra=gate) as (app, client):
            late = await client.post("/v1/spectra", json={"spectra": [flux(2)]})
            gate.released.set()
            return late, await client.get("/healthz")

    late, health = asyncio.run(scenario())
    assert late.status_code == 504
    assert late.json()["error"]["code"] == "deadline_exceeded"
    assert health.status_code == 200


def test_a_lone_request_does_not_wait_for_company(tmp_path):
    """max_wait_ms is a minute, yet a request alone in the server is answered: the middleware tells
    the batcher nobody else is arriving (a liveness check, no timing)."""
    policy = BatchPolicy(max_batch_size=32, max_wait_ms=60_000)
    settings = Settings(model_root=store_with(tmp_path, "ner"), batching={"ner": policy})

    async def scenario():
        async with serving(settings) as (app, client):
            return await asyncio.wait_for(client.post("/v1/ner", json={"text": NER_TEXTS[0]}), 20)

    assert asyncio.run(scenario()).status_code == 200


def test_a_model_error_fails_only_its_own_request(tmp_path):
    policy = BatchPolicy(max_batch_size=2, max_wait_ms=60_000)
    settings = Settings(model_root=store_with(tmp_path, "spectra"), batching={"spectra": policy})
    poisoned = flux(3)
    poisoned[0] = 13.0
    gate = Gate(read_with_pipeline, fails=lambda rows: any(row[0] == 13.0 for row in rows))
    gate.released.set()

    async def scenario():
        async with serving(settings, spectra=gate) as (app, client):
            return await asyncio.gather(
                client.post("/v1/spectra", json={"spectra": [flux(4)]}),
                client.post("/v1/spectra", json={"spectra": [poisoned]}, headers={"x-request-id": "poisoned-1"}),
            )

    good, bad = asyncio.run(scenario())
    assert good.status_code == 200
    assert bad.status_code == 500
    assert "poisoned-1" in bad.json()["error"]["message"]
    assert bad.headers["x-request-id"] == "poisoned-1"


def test_reload_switches_only_to_a_version_that_loads_and_answers(tmp_path):
    root = tmp_path / "models"
    shutil.copytree(bundled_version("spectra"), root / "spectra" / "1")
    body = {"spectra": [flux(5)]}

    def add_version(version: int) -> Path:
        return shutil.copytree(root / "spectra" / "1", root / "spectra" / str(version))

    keys = write_keys_file(tmp_path / "keys.yaml", {"ops": ["admin", "metrics", "predict"]})
    admin = {"Authorization": f"Bearer {keys['ops']}"}

    async def scenario():
        async with serving(Settings(model_root=root, api_keys_file=tmp_path / "keys.yaml")) as (app, client):
            client.headers.update(admin)
            reload = lambda json=None: client.post("/v1/models/spectra/reload", json=json)  # noqa: E731
            assert (await reload()).json() == {"model": "spectra", "task": "spectra", "version": 1, "previous_version": 1}

            add_version(2)
            assert (await reload()).json()["version"] == 2
            assert (await client.post("/v1/spectra", json=body)).json()["model_version"] == 2

            # Half-written: the variables were cut off mid-copy. The old version keeps serving.
            half = add_version(3)
            for shard in (half / "variables").glob("variables.data-*"):
                shard.write_bytes(shard.read_bytes()[:100])
            failed = await reload()
            assert failed.status_code == 409
            assert failed.json()["error"]["code"] == "reload_failed"
            assert failed.json()["serving_version"] == 2
            assert (await client.post("/v1/spectra", json=body)).json()["model_version"] == 2

            # Loads, but fails the smoke check (its warm-up input does not fit the signature).
            odd = add_version(4)
            manifest = (odd / "manifest.json").read_text()
            (odd / "manifest.json").write_text(manifest.replace('"warmup_inputs": {', '"warmup_inputs": {"bogus": 1, ', 1))
            assert (await reload()).status_code == 409
            assert (await client.post("/v1/spectra", json=body)).json()["model_version"] == 2

            rolled_back = await reload({"version": 1})
            assert rolled_back.json() == {"model": "spectra", "task": "spectra", "version": 1, "previous_version": 2}
            assert (await client.post("/v1/spectra", json=body)).json()["model_version"] == 1

            assert (await reload({"version": 99})).status_code == 404
            assert (await client.post("/v1/models/nope/reload")).status_code == 404
            assert (await reload({"version": "two"})).status_code == 422
            return (await client.get("/metrics")).text

    exposition = asyncio.run(scenario())
    assert 'model_version_info{model="spectra",serving="true",task="spectra",version="1"} 1.0' in exposition
    assert 'model_reloads_total{outcome="failed",task="spectra"} 2.0' in exposition
    assert 'model_reloads_total{outcome="succeeded",task="spectra"} 3.0' in exposition


def test_metrics_cover_requests_batches_queues_and_versions(client):
    client.post("/v1/ner", json={"text": "张三在上海工作。"})
    client.post("/v1/ner", json={"text": ""})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for expected in (
        'http_requests_total{method="POST",route="/v1/ner",status="200"}',
        'http_requests_total{method="POST",route="/v1/ner",status="422"}',
        'http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/ner",status="200"}',
        'model_batch_size_bucket{le="1.0",task="ner"}',
        'model_inference_seconds_count{task="ner"}',
        'model_queue_depth{task="ner"} 0.0',
        f'model_version_info{{model="ner",serving="true",task="ner",version="{bundled_version("ner").name}"}} 1.0',
        f'model_version_info{{model="spectra",serving="true",task="spectra",version="{bundled_version("spectra").name}"}} 1.0',
    ):
        assert expected in text


def test_batching_is_configured_per_task_from_the_environment(monkeypatch):
    monkeypatch.setenv("APP_BATCHING__NER__MAX_BATCH_SIZE", "1")
    monkeypatch.setenv("APP_BATCHING__NER__MAX_WAIT_MS", "0")
    batching = Settings().batching
    assert batching["ner"] == BatchPolicy(max_batch_size=1, max_wait_ms=0)
    assert "spectra" not in batching  # other tasks keep the BatchPolicy defaults


def test_the_request_middleware_tells_the_batchers_who_is_in_the_server():
    arrivals = Arrivals()
    seen = []

    async def endpoint(scope, receive, send):
        seen.append(arrivals.expected())  # this request is in the server, in no batcher
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(RequestContextMiddleware(endpoint, arrivals=arrivals)), base_url="http://t"
        ) as client:
            await client.get("/")

    asyncio.run(scenario())
    assert seen == [True] and not arrivals.expected()


def test_tensorflow_threads_setting(monkeypatch):
    """The variable is what sizes TensorFlow's kernel threadpools in a fresh server process (here
    TensorFlow already runs, which must not fail)."""
    from app.main import configure_tensorflow

    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert Settings().tf_intra_op_threads == 0
    configure_tensorflow(0)  # TensorFlow's own choice: nothing set
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ
    configure_tensorflow(3)
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "3"
