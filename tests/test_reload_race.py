"""A request is answered by one version from admission to answer, whatever reloads meanwhile.

Two versions of the bundled QA reader that differ only in their calibration are reloaded back and
forth over real HTTP while 16 clients ask questions: every answer's probability must be what the
version it reports gives its score. Before requests were bound to a version, the route applied one
version's calibration and reported the other's number.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from app.tasks.calibration import PlattScaling
from bench.serve import Server
from tests.conftest import bundled_version, write_keys_file

CLIENTS = 16
SECONDS = 20.0
QUESTION = {"question": "中国的首都是哪里？", "passages": ["北京是中华人民共和国的首都，也是全国的政治中心。", "上海是中国最大的经济中心。"]}
# Far apart, so that a score mapped by the wrong one is always noticed.
CALIBRATIONS = {1: {"slope": 0.6, "intercept": 0.3}, 2: {"slope": 2.0, "intercept": -1.5}}


def _two_versions(root):
    """``qa/1`` and ``qa/2``: the bundled reader's files (linked) with different calibrations."""
    source = bundled_version("qa")
    manifest = json.loads((source / "manifest.json").read_text())
    for version, calibration in CALIBRATIONS.items():
        target = root / "qa" / str(version)
        target.mkdir(parents=True)
        for item in source.iterdir():
            if item.name != "manifest.json":
                (target / item.name).symlink_to(item)
        fields = {**manifest, "version": version, "calibration": {**manifest["calibration"], **calibration}}
        (target / "manifest.json").write_text(json.dumps(fields, ensure_ascii=False))


async def _ask(http: httpx.AsyncClient, stop: float, answers: list, failures: list) -> None:
    while time.monotonic() < stop:
        response = await http.post("/v1/qa", json=QUESTION)
        if response.status_code != 200:
            failures.append(response.status_code)
            continue
        answers.append(response.json())


async def _reload(http: httpx.AsyncClient, stop: float, reloads: list) -> None:
    version = 1
    while time.monotonic() < stop:
        version = 3 - version
        response = await http.post("/v1/models/qa/reload", json={"version": version})
        assert response.status_code == 200, response.text
        reloads.append(version)


def test_answers_match_the_version_they_report_under_reloads(tmp_path):
    _two_versions(tmp_path / "models")
    secrets = write_keys_file(tmp_path / "keys.yaml", {"ops": ["admin"], "caller": ["predict:qa"]})
    env = {"APP_MODEL_ROOT": str(tmp_path / "models"), "APP_API_KEYS_FILE": str(tmp_path / "keys.yaml")}
    answers, failures, reloads = [], [], []

    async def scenario(url: str) -> None:
        stop = time.monotonic() + SECONDS
        caller = {"Authorization": f"Bearer {secrets['caller']}"}
        admin = {"Authorization": f"Bearer {secrets['ops']}"}
        async with httpx.AsyncClient(base_url=url, headers=caller, timeout=60) as http, httpx.AsyncClient(
            base_url=url, headers=admin, timeout=120
        ) as admin_http:
            await asyncio.gather(_reload(admin_http, stop, reloads), *(_ask(http, stop, answers, failures) for _ in range(CLIENTS)))

    with Server(env) as server:
        asyncio.run(scenario(server.url))
    assert failures == []
    assert len(reloads) >= 2 and {a["model_version"] for a in answers} == {1, 2}
    mismatches = [
        a for a in answers
        if abs(a["probability"] - round(PlattScaling(**CALIBRATIONS[a["model_version"]]).probability(a["score"]), 6)) > 2e-6
    ]
    assert mismatches == []
