"""Several versions and models side by side: pinning, labels, traffic split, unload, memory limit.

The app runs in-process with its lifespan (the bundled NER model, linked into a temporary store as
several versions and models) and is called over httpx's ASGI transport; a caller's address is the
transport's client address. Where a request must be held in flight, the batch function is gated.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from app.engine import read_with_pipeline
from app.registry import resident_bytes
from app.settings import Settings
from tests.conftest import bundled_version, until, write_keys_file
from tests.test_engine import Gate, serving

TEXT = {"text": "新华社北京电国务院总理李鹏今天会见了日本客人。"}


def ner_store(tmp_path: Path, layout: dict[str, list[int]]) -> Path:
    """A store whose every model version is the bundled NER model (linked): ``{"ner": [1, 2]}``."""
    root = tmp_path / "models"
    for model, versions in layout.items():
        for version in versions:
            (root / model).mkdir(parents=True, exist_ok=True)
            (root / model / str(version)).symlink_to(bundled_version("ner"), target_is_directory=True)
    return root


def admin_settings(tmp_path: Path, root: Path, **options) -> tuple[Settings, dict[str, str]]:
    keys = write_keys_file(tmp_path / "keys.yaml", {"ops": ["admin", "metrics", "predict"]})
    return Settings(model_root=root, api_keys_file=tmp_path / "keys.yaml", **options), {"Authorization": f"Bearer {keys['ops']}"}


def test_each_pinned_request_is_answered_by_its_own_version(tmp_path):
    settings, admin = admin_settings(tmp_path, ner_store(tmp_path, {"ner": [1, 2, 3]}), serve_versions="all")

    async def scenario():
        async with serving(settings) as (app, client):
            client.headers.update(admin)
            pinned = await asyncio.gather(*(client.post("/v1/ner", json={**TEXT, "version": v}) for v in (1, 2, 3, 1, 2, 3)))
            default = await client.post("/v1/ner", json=TEXT)
            missing = await client.post("/v1/ner", json={**TEXT, "version": 9})
            assert (await client.put("/v1/models/ner/labels/stable", json={"version": 2})).status_code == 200
            both = [await client.post("/v1/ner", json={**TEXT, "version": v, "version_label": "stable"}) for v in (2, 1)]
            catalogue = (await client.get("/v1/models")).json()
            return pinned, default, missing, both, catalogue

    pinned, default, missing, both, catalogue = asyncio.run(scenario())
    assert [r.json()["model_version"] for r in pinned] == [1, 2, 3, 1, 2, 3]
    assert {r.json()["model"] for r in pinned} == {"ner"}
    assert default.json()["model_version"] == 3  # the highest serves callers who name none
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_served"
    assert "loaded: 1, 2, 3" in missing.json()["error"]["message"]
    assert both[0].json()["model_version"] == 2  # the label names the version asked for
    assert both[1].status_code == 404 and "is not version 1" in both[1].json()["error"]["message"]
    assert [m["version"] for m in catalogue["models"]] == [1, 2, 3]
    (served,) = catalogue["served"]
    assert served == {
        "model": "ner", "task": "ner", "default": True, "serving_version": 3, "loaded_versions": [1, 2, 3],
        "labels": {"stable": 2}, "traffic": {},
    }


def test_a_label_moves_under_16_concurrent_clients_without_a_failed_request(tmp_path):
    settings, admin = admin_settings(tmp_path, ner_store(tmp_path, {"ner": [1, 2]}), serve_versions="all")

    async def scenario():
        async with serving(settings) as (app, client):
            client.headers.update(admin)
            label = lambda version: client.put("/v1/models/ner/labels/stable", json={"version": version})  # noqa: E731
            assert (await label(1)).json() == {"model": "ner", "labels": {"stable": 1}}
            done = asyncio.Event()

            async def caller():
                answers = []
                while not done.is_set():
                    answers.append(await client.post("/v1/ner", json={**TEXT, "version_label": "stable"}))
                return answers

            callers = [asyncio.ensure_future(caller()) for _ in range(16)]
            for version in (2, 1, 2, 1, 2):
                await until(lambda: sum(c.done() for c in callers) == 0)
                await asyncio.sleep(0.05)  # let requests flow between moves
                assert (await label(version)).status_code == 200
            await asyncio.sleep(0.05)
            done.set()
            answers = [a for c in callers for a in await c]
            after = await client.post("/v1/ner", json={**TEXT, "version_label": "stable"})
            unknown = await client.post("/v1/ner", json={**TEXT, "version_label": "canary"})
            return answers, after, unknown

    answers, after, unknown = asyncio.run(scenario())
    assert len(answers) >= 16
    assert [a.status_code for a in answers if a.status_code != 200] == []
    assert {a.json()["model_version"] for a in answers} <= {1, 2}
    assert after.json()["model_version"] == 2
    assert unknown.status_code == 404
    assert "labels: stable" in unknown.json()["error"]["message"]


def test_a_90_10_split_over_200_callers_is_sticky_and_within_3_points(tmp_path):
    settings, admin = admin_settings(tmp_path, ner_store(tmp_path, {"ner": [5, 6]}), serve_versions="all")
    settings = settings.model_copy(update={"api_keys_file": None})  # open: callers are known by address

    async def scenario():
        async with serving(settings) as (app, admin_client):
            registry = app.state.registry
            assert registry.set_traffic("ner", {5: 90, 6: 10}) == {5: 90, 6: 10}

            async def caller(index: int) -> list[int]:
                transport = httpx.ASGITransport(app=app, client=(f"10.0.{index // 250}.{index % 250 + 1}", 40000))
                async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
                    return [(await client.post("/v1/ner", json=TEXT)).json()["model_version"] for _ in range(10)]

            seen = await asyncio.gather(*(caller(i) for i in range(200)))
            catalogue = (await admin_client.get("/v1/models")).json()
            return seen, catalogue

    seen, catalogue = asyncio.run(scenario())
    assert all(len(set(versions)) == 1 for versions in seen)  # one caller, one version
    share = sum(v == 6 for versions in seen for v in versions) / 2000
    assert abs(share - 0.10) <= 0.03
    assert catalogue["served"][0]["traffic"] == {"5": 90, "6": 10}


def test_an_unload_waits_for_its_requests_and_later_ones_get_404(tmp_path):
    settings, admin = admin_settings(tmp_path, ner_store(tmp_path, {"ner": [1, 2]}), serve_versions="all")
    gate = Gate(read_with_pipeline)

    async def scenario():
        async with serving(settings, ner=gate) as (app, client):
            client.headers.update(admin)
            held = [asyncio.ensure_future(client.post("/v1/ner", json={**TEXT, "version": 1})) for _ in range(3)]
            await until(gate.entered.is_set)
            unloading = asyncio.ensure_future(client.post("/v1/models/ner/versions/1/unload"))
            await until(lambda: 1 not in app.state.registry.models()[0]["loaded_versions"])
            later = await client.post("/v1/ner", json={**TEXT, "version": 1})
            still_waiting = not unloading.done()
            gate.released.set()
            finished = await asyncio.gather(*held)
            unloaded = await unloading
            last = await client.post("/v1/models/ner/versions/2/unload")
            exposition = (await client.get("/metrics")).text
            return later, still_waiting, finished, unloaded, last, exposition

    later, still_waiting, finished, unloaded, last, exposition = asyncio.run(scenario())
    assert later.status_code == 404
    assert still_waiting  # the unload answers only once its requests are done
    assert [(r.status_code, r.json()["model_version"]) for r in finished] == [(200, 1)] * 3
    assert unloaded.json() == {"model": "ner", "version": 1, "loaded": False, "still_in_flight": 0}
    assert last.status_code == 409  # the only version left
    assert 'model_requests_total{model="ner",outcome="ok",version="1"} 3.0' in exposition
    assert 'model_requests_total{model="ner",outcome="error",version="1"}' not in exposition
    assert 'model_request_duration_seconds_count{model="ner",version="1"} 3.0' in exposition
    assert 'model_version_info{model="ner",serving="true",task="ner",version="2"} 1.0' in exposition


def test_a_load_past_the_memory_limit_is_refused_with_what_it_needs(tmp_path):
    settings, admin = admin_settings(tmp_path, ner_store(tmp_path, {"ner": [1, 2]}), memory_limit_mb=100_000)

    async def scenario():
        async with serving(settings) as (app, client):
            client.headers.update(admin)
            app.state.registry.memory_limit = resident_bytes() + 2**20  # 1 MB left
            refused = await client.post("/v1/models/ner/versions/1/load")
            catalogue = (await client.get("/v1/models")).json()
            app.state.registry.memory_limit = 0
            allowed = await client.post("/v1/models/ner/versions/1/load")
            return refused, catalogue, allowed

    refused, catalogue, allowed = asyncio.run(scenario())
    assert refused.status_code == 409
    message = refused.json()["error"]["message"]
    assert "needs about" in message and "MB are left under APP_MEMORY_LIMIT_MB" in message
    assert refused.json()["serving_version"] == 2
    assert catalogue["served"][0]["loaded_versions"] == [2]
    assert allowed.json() == {"model": "ner", "version": 1, "loaded": True, "still_in_flight": 0}


def test_labels_live_in_the_store_and_survive_a_restart(tmp_path):
    root = ner_store(tmp_path, {"ner": [1, 2]})
    settings, admin = admin_settings(tmp_path, root, serve_versions="all")

    async def set_label():
        async with serving(settings) as (app, client):
            client.headers.update(admin)
            return await client.put("/v1/models/ner/labels/stable", json={"version": 1})

    async def after_restart():
        async with serving(settings) as (app, client):
            client.headers.update(admin)
            return (
                await client.post("/v1/ner", json={**TEXT, "version_label": "stable"}),
                await client.put("/v1/models/ner/labels/stable", json={"version": 7}),
            )

    assert asyncio.run(set_label()).status_code == 200
    assert json.loads((root / "ner" / "labels.json").read_text()) == {"stable": 1}
    answered, no_such_version = asyncio.run(after_restart())
    assert answered.json()["model_version"] == 1
    assert no_such_version.status_code == 404


def test_two_models_of_one_task_answer_side_by_side(tmp_path):
    settings, admin = admin_settings(tmp_path, ner_store(tmp_path, {"ner": [4], "ner-fine": [1]}))

    async def scenario():
        async with serving(settings) as (app, client):
            client.headers.update(admin)
            answers = await asyncio.gather(
                client.post("/v1/ner", json=TEXT),
                client.post("/v1/ner", json={**TEXT, "model": "ner-fine"}),
                client.post("/v1/ner", json={**TEXT, "model": "ner-fine", "version": 1}),
            )
            wrong_task = await client.post("/v1/qa", json={"question": "谁?", "passages": ["李鹏"], "model": "ner-fine"})
            unknown = await client.post("/v1/ner", json={**TEXT, "model": "ner-coarse"})
            catalogue = (await client.get("/v1/models")).json()
            return answers, wrong_task, unknown, catalogue

    answers, wrong_task, unknown, catalogue = asyncio.run(scenario())
    assert [(a.json()["model"], a.json()["model_version"]) for a in answers] == [("ner", 4), ("ner-fine", 1), ("ner-fine", 1)]
    spans = lambda answer: [(e["type"], e["start"], e["end"]) for e in answer.json()["entities"]]  # noqa: E731
    assert spans(answers[0]) == spans(answers[1])
    assert wrong_task.status_code == 404
    assert unknown.status_code == 404
    assert "models: ner, ner-fine" in unknown.json()["error"]["message"]
    assert [(m["model"], m["task"], m["default"]) for m in catalogue["served"]] == [("ner", "ner", True), ("ner-fine", "ner", False)]


def test_compare_replays_requests_against_two_versions_in_process(tmp_path, capsys):
    from app.compare import main

    root = ner_store(tmp_path, {"ner": [1, 2]})
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join(json.dumps(body, ensure_ascii=False) for body in [TEXT, {"texts": ["张三在上海工作。", "他"]}, {"text": ""}]))
    main(["--model", "ner", "--versions", "1", "2", "--model-root", str(root), "--out", str(tmp_path / "report.json"), str(requests)])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["requests"], summary["compared"], summary["failed"], summary["changed"]) == (3, 2, 1, 0)
    assert summary["entity_f1_second_vs_first"] == 1.0
    assert set(summary["latency"]) == {"1", "2"}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failures"][0]["status"] == [422, 422]


def test_compare_scores_each_task_s_differences():
    from app.compare import compare_headline, compare_ner, compare_qa, compare_spectra

    entity = lambda kind, start, end, text: {"type": kind, "start": start, "end": end, "text": text}  # noqa: E731
    row, differs = compare_ner(
        {"entities": [entity("PER", 0, 2, "李鹏"), entity("LOC", 3, 5, "北京")]}, {"entities": [entity("PER", 0, 2, "李鹏")]}
    )
    assert differs and row["dropped"] == [("LOC", 3, 5, "北京")] and row["common"] == 1
    row, differs = compare_qa({"answer": "北京市", "probability": 0.9}, {"answer": "北京", "probability": 0.7})
    assert differs and not row["agree"] and row["f1"] == 0.8 and abs(row["probability_shift"] - 0.2) < 1e-9
    row, differs = compare_headline({"headline": "今天天气很好"}, {"headline": "今天天气好"})
    assert differs and 0.9 < row["rouge_l"] < 1
    star = {"label": "STAR", "z": 0.0001, "subtype": "G"}
    row, differs = compare_spectra({"results": [star, star]}, {"results": [star, {**star, "subtype": "K", "z": 0.0003}]})
    assert differs and (row["label_agreement"], row["subtype_agreement"]) == (2, 1)


def test_a_store_that_cannot_be_written_refuses_a_label_with_409(tmp_path):
    settings, admin = admin_settings(tmp_path, ner_store(tmp_path, {"ner": [1]}))

    async def scenario():
        async with serving(settings) as (app, client):
            client.headers.update(admin)
            # As a store baked into a read-only image fails (tests run as root, who may write anywhere).
            labels = app.state.registry._served["ner"].labels
            labels.path = tmp_path / "gone" / "labels.json"
            return await client.put("/v1/models/ner/labels/stable", json={"version": 1})

    refused = asyncio.run(scenario())
    assert refused.status_code == 409
    assert "cannot be written" in refused.json()["error"]["message"]
    assert str(tmp_path) not in refused.text
