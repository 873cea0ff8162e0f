"""Two real API replicas behind a real nginx on loopback, rendered from the same template as
docker-compose's load balancer: requests are spread round robin, and killing a replica in the
middle of a bounded load loses no request.

Needs Debian's nginx (``apt-get install nginx-light``); skips without it unless
``REQUIRE_SYSTEM_PACKAGES=1`` (set by ``.ci/run``, which installs it).
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import string
import subprocess
import threading

import httpx
import pytest

from bench.serve import Server, free_port
from tests.conftest import REPO, system_tool, wait_until

pytestmark = [pytest.mark.server, pytest.mark.lb]

TEMPLATE = REPO / "deploy" / "nginx" / "api.conf.template"
TEXTS = [f"李鹏{i}日在北京会见了日本客人。" for i in range(20)]


def render(template: str, **values: str) -> str:
    """envsubst as the nginx image runs it: only the given variables, nginx's own $vars untouched."""
    return string.Template(template).safe_substitute(values)


@pytest.fixture(scope="module")
def replicas():
    with Server({}) as first, Server({}) as second:
        yield [first, second]


@pytest.fixture(scope="module")
def nginx_url(replicas, tmp_path_factory):
    nginx = system_tool("nginx", "nginx-light")
    root = tmp_path_factory.mktemp("nginx")
    port = free_port()
    servers = " ".join(f"server 127.0.0.1:{r.port} max_fails=1 fail_timeout=30s;" for r in replicas)
    site = render(TEMPLATE.read_text(), NGINX_UPSTREAM_SERVERS=servers, NGINX_PORT=f"127.0.0.1:{port}",
                  NGINX_MAX_BODY_BYTES="4000000")
    (root / "api.conf").write_text(site)
    # The main context the official image provides, minimal and unprivileged, writing under root.
    (root / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/api.conf;
}}
""")
    command = [nginx, "-p", str(root), "-e", str(root / "error.log"), "-c", str(root / "nginx.conf")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.stderr.read().decode()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answering, timeout=30)
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


def _ner(http: httpx.Client, text: str) -> httpx.Response:
    return http.post("/v1/ner", json={"text": text})


def test_requests_are_spread_over_the_replicas(nginx_url, replicas):
    with httpx.Client(base_url=nginx_url, timeout=30) as http:
        upstreams = [_ner(http, t).headers["x-upstream"] for t in TEXTS[:8]]
    assert set(upstreams) == {f"127.0.0.1:{r.port}" for r in replicas}


def test_the_body_limit_matches_the_app(nginx_url):
    with httpx.Client(base_url=nginx_url, timeout=30) as http:
        response = http.post("/v1/ner", content=b"x" * 4_000_001, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_killing_a_replica_under_load_loses_no_request(nginx_url, replicas):
    """A bounded closed-loop load through nginx; one replica is killed (SIGKILL, mid-request)
    once a third of the requests are answered. Every request must still get its 200."""
    total, killed_after, concurrency = 90, 30, 6
    answers: list[tuple[int, str]] = []  # (status, upstream), in the order they came back
    entities: dict[str, set[str]] = {}  # text → the distinct entity lists it got
    lock = threading.Lock()
    victim = replicas[0]

    def worker(texts: list[str]) -> None:
        with httpx.Client(base_url=nginx_url, timeout=60) as http:
            for text in texts:
                response = _ner(http, text)
                with lock:
                    answers.append((response.status_code, response.headers.get("x-upstream", "")))
                    if response.status_code == 200:
                        # Entities, not the confidence: its last digits vary with what a text is batched with.
                        entities.setdefault(text, set()).add(json.dumps(response.json()["entities"], sort_keys=True))
                    if len(answers) == killed_after:
                        victim.process.send_signal(signal.SIGKILL)

    texts = [TEXTS[i % len(TEXTS)] for i in range(total)]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, [texts[i::concurrency] for i in range(concurrency)]))

    assert victim.process.wait(timeout=10) == -signal.SIGKILL
    assert [status for status, _ in answers] == [200] * total, answers
    assert all(len(distinct) == 1 for distinct in entities.values()), entities  # both replicas answer alike
    # Once the requests in flight at the kill are through, the survivor answers alone (a retried
    # request lists both addresses, the survivor last).
    survivor = f"127.0.0.1:{replicas[1].port}"
    assert all(upstream.endswith(survivor) for _, upstream in answers[killed_after + concurrency :])
