"""Issue 34's address probes against the real server (``python -m app.server``), configured as the
deployment files configure it: X-Forwarded-For counts only from the trusted proxies, and guesses
made from (or in the name of) a victim's address never lock the victim's right key out."""

from __future__ import annotations

import httpx
import pytest
import yaml

from app.tasks.spectra.grid import LAMOST
from bench.serve import Server
from tests.conftest import REPO, write_keys_file

pytestmark = [pytest.mark.slow, pytest.mark.server]

SPECTRUM = {"spectra": [[1.0] * LAMOST.npix]}


def _compose_trusted_proxies() -> str:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return compose["services"]["api"]["environment"]["FORWARDED_ALLOW_IPS"]


def _k8s_trusted_proxies() -> str:
    deployment = yaml.safe_load((REPO / "k8s" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}["FORWARDED_ALLOW_IPS"]


def _server(tmp_path, store, trusted: str) -> tuple[Server, dict[str, str]]:
    keys = write_keys_file(tmp_path / "keys.yaml", {"victim": ["predict"]})
    env = {"APP_MODEL_ROOT": str(store), "APP_API_KEYS_FILE": str(tmp_path / "keys.yaml"),
           "APP_AUTH_FAILURE_LIMIT": "5/minute", "FORWARDED_ALLOW_IPS": trusted}
    return Server(env), keys


@pytest.mark.parametrize("deployment", ["compose", "k8s"])
def test_a_rotated_forwarded_address_from_an_untrusted_client_changes_nothing(tmp_path, tiny_spectra_store, deployment):
    trusted = _compose_trusted_proxies() if deployment == "compose" else _k8s_trusted_proxies()
    server, _ = _server(tmp_path, tiny_spectra_store, trusted)
    with server, httpx.Client(base_url=server.url) as client:  # the test connects from 127.0.0.1: not a proxy
        statuses = [
            client.post("/v1/spectra", json=SPECTRUM, headers={"Authorization": f"Bearer msk_guess{i}", "X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(8)
        ]
    assert statuses == [401] * 5 + [429] * 3


def test_guesses_in_a_victims_name_never_lock_out_the_victims_key(tmp_path, tiny_spectra_store):
    server, keys = _server(tmp_path, tiny_spectra_store, "127.0.0.1")  # the test is the proxy, as nginx is
    victim = {"X-Forwarded-For": "198.51.100.7"}
    with server, httpx.Client(base_url=server.url) as client:
        guesses = [
            client.post("/v1/spectra", json=SPECTRUM, headers={**victim, "Authorization": f"Bearer msk_guess{i}"}).status_code
            for i in range(8)
        ]
        answered = client.post("/v1/spectra", json=SPECTRUM, headers={**victim, "Authorization": f"Bearer {keys['victim']}"})
        still_refused = client.post("/v1/spectra", json=SPECTRUM, headers={**victim, "Authorization": "Bearer msk_guess9"})
        elsewhere = client.post("/v1/spectra", json=SPECTRUM, headers={"X-Forwarded-For": "192.0.2.1", "Authorization": "Bearer msk_guess10"})
    assert guesses == [401] * 5 + [429] * 3
    assert answered.status_code == 200, answered.text
    assert still_refused.status_code == 429 and int(still_refused.headers["retry-after"]) >= 1
    assert elsewhere.status_code == 401  # another address has its own count


def test_the_server_refuses_to_trust_every_address():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "app.server", "--forwarded-allow-ips", "*"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not '*'" in result.stderr
