"""One key's quota holds across two real replicas sharing a real Redis (Debian's ``redis-server``,
started here on a free loopback port); when Redis goes away the replicas keep answering.

Skips without ``redis-server`` unless ``REQUIRE_SYSTEM_PACKAGES=1`` (set by ``.ci/run``, which
installs it).
"""

from __future__ import annotations

import subprocess

import httpx
import pytest

from bench.serve import Server, free_port
from tests.conftest import system_tool, wait_until, write_keys_file

pytestmark = [pytest.mark.slow, pytest.mark.server]

SPECTRUM = {"spectra": [[1.0 + 0.01 * (i % 7) for i in range(3904)]]}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    redis_server = system_tool("redis-server", "redis-server")
    port = free_port()
    root = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError("redis-server exited")
        try:
            return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, timeout=2).stdout.strip() == b"PONG"
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return False

    try:
        wait_until(answering, timeout=20)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def replicas(redis_url, tiny_spectra_store, tmp_path_factory):
    keys_path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys = write_keys_file(keys_path, {"metered": ["predict"]}, rate_limits={"metered": "4/minute"})
    env = {"APP_MODEL_ROOT": str(tiny_spectra_store), "APP_API_KEYS_FILE": str(keys_path), "APP_RATE_LIMIT_STORAGE": redis_url[0]}
    with Server(env) as first, Server(env) as second:
        yield [first, second], keys["metered"]


def test_a_quota_holds_across_replicas(replicas):
    servers, key = replicas
    headers = {"Authorization": f"Bearer {key}"}
    statuses = [
        httpx.post(f"{servers[i % 2].url}/v1/spectra", json=SPECTRUM, headers=headers, timeout=30).status_code
        for i in range(6)
    ]
    # In memory each replica would allow 4 (8 in all); shared, the fifth and sixth are refused.
    assert statuses == [200, 200, 200, 200, 429, 429]
    over = httpx.post(f"{servers[1].url}/v1/spectra", json=SPECTRUM, headers=headers, timeout=30)
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1


def test_replicas_keep_answering_when_redis_goes_away(replicas, redis_url):
    servers, key = replicas
    process = redis_url[1]
    process.terminate()
    process.wait(timeout=10)
    # Fail open: the quota is not enforced while Redis is down, but the service is not down with it.
    response = httpx.get(f"{servers[0].url}/v1/models", headers={"X-API-Key": key}, timeout=30)
    assert response.status_code == 200
