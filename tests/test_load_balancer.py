"""Two real API replicas behind a real nginx on loopback, rendered from the same template as
docker-compose's load balancer, terminating TLS with a self-signed certificate made here
(openssl): plain HTTP is redirected, HTTPS carries HSTS, requests are spread round robin,
slow heads are dropped, and killing a replica in the middle of a bounded load loses no request.

Needs Debian's nginx and openssl (``apt-get install nginx-light openssl``); skips without them
unless ``REQUIRE_SYSTEM_PACKAGES=1`` (set by ``.ci/run``, which installs them).
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import ssl
import string
import subprocess
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from bench.serve import Server, free_port
from tests.conftest import REPO, system_tool, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.lb]

TEMPLATE = REPO / "deploy" / "nginx" / "api.conf.template"
TEXTS = [f"李鹏{i}日在北京会见了日本客人。" for i in range(20)]


def render(template: str, **values: str) -> str:
    """envsubst as the nginx image runs it: only the given variables, nginx's own $vars untouched."""
    return string.Template(template).safe_substitute(values)


@pytest.fixture(scope="module")
def replicas():
    with Server({}) as first, Server({}) as second:
        yield [first, second]


@dataclass(frozen=True)
class Edge:
    url: str  # https://…
    http_url: str  # the plain-HTTP port, which redirects
    tls: ssl.SSLContext  # trusts the test's own certificate
    https_port: int


def self_signed_certificate(root) -> tuple[str, str]:
    openssl = system_tool("openssl", "openssl")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture(scope="module")
def edge(replicas, tmp_path_factory):
    nginx = system_tool("nginx", "nginx-light")
    root = tmp_path_factory.mktemp("nginx")
    cert, key = self_signed_certificate(root)
    port, https_port = free_port(), free_port()
    servers = " ".join(f"server 127.0.0.1:{r.port} max_fails=1 fail_timeout=30s;" for r in replicas)
    site = render(TEMPLATE.read_text(), NGINX_UPSTREAM_SERVERS=servers, NGINX_PORT=f"127.0.0.1:{port}",
                  NGINX_HTTPS_PORT=str(https_port), NGINX_TLS_CERT=cert, NGINX_TLS_KEY=key,
                  NGINX_MAX_BODY_BYTES="4000000")
    site = site.replace(f"listen {https_port} ssl;", f"listen 127.0.0.1:{https_port} ssl;")  # loopback only
    site = site.replace("client_header_timeout 10s;", "client_header_timeout 2s;")  # a quick test
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
    edge = Edge(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{port}", ssl.create_default_context(cafile=cert), https_port)

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.stderr.read().decode()}")
        try:
            return httpx.get(f"{edge.url}/healthz", timeout=2, verify=edge.tls).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answering, timeout=30)
        yield edge
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


def _ner(http: httpx.Client, text: str) -> httpx.Response:
    return http.post("/v1/ner", json={"text": text})


def test_requests_are_spread_over_the_replicas_over_https(edge, replicas):
    with httpx.Client(base_url=edge.url, timeout=30, verify=edge.tls) as http:
        responses = [_ner(http, t) for t in TEXTS[:8]]
    assert {r.headers["x-upstream"] for r in responses} == {f"127.0.0.1:{r.port}" for r in replicas}
    assert all(r.status_code == 200 and r.headers["strict-transport-security"].startswith("max-age=") for r in responses)


def test_plain_http_is_redirected_to_https(edge):
    response = httpx.post(f"{edge.http_url}/v1/ner?x=1", json={"text": TEXTS[0]}, timeout=10)
    assert response.status_code == 308  # a POST stays a POST
    assert response.headers["location"] == f"https://127.0.0.1:{edge.https_port}/v1/ner?x=1"
    with pytest.raises(httpx.ConnectError):  # and the certificate is checked: no trust, no talk
        httpx.get(f"{edge.url}/healthz", timeout=5)


def test_the_body_limit_matches_the_app(edge):
    with httpx.Client(base_url=edge.url, timeout=30, verify=edge.tls) as http:
        response = http.post("/v1/ner", content=b"x" * 4_000_001, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_the_edge_drops_half_sent_heads_and_keeps_answering(edge):
    """The template's client_header_timeout (shortened to 2 s when rendered here): connections
    that never finish their request head are closed, and other clients are answered meanwhile."""
    held = [edge.tls.wrap_socket(socket.create_connection(("127.0.0.1", edge.https_port), timeout=5),
                                 server_hostname="127.0.0.1") for _ in range(50)]
    try:
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a head
        started = time.monotonic()
        assert httpx.get(f"{edge.url}/healthz", timeout=10, verify=edge.tls).status_code == 200
        for s in held:
            s.settimeout(8)  # a socket.timeout here means the edge held the connection
            _read_until_closed(s)
        assert time.monotonic() - started < 8
    finally:
        for s in held:
            s.close()


def _read_until_closed(s: ssl.SSLSocket) -> None:
    """Returns once the server has closed the connection (nginx may send a 408 first)."""
    try:
        while s.recv(1024):
            pass
    except (ssl.SSLError, ConnectionResetError):
        pass


def test_killing_a_replica_under_load_loses_no_request(edge, replicas):
    """A bounded closed-loop load through nginx; one replica is killed (SIGKILL, mid-request)
    once a third of the requests are answered. Every request must still get its 200.

    nginx re-sends a prediction whose replica died before answering. An answer cut after its
    status line and headers had reached the client cannot be re-sent by the edge (it has
    already answered); the client re-sends it, as the project's client does for predictions on
    a broken connection. Only requests in flight at the kill may need that. Requests sent once the
    victim is dead are the survivor's, however the threads are scheduled (the order answers come
    back in is not a clock: under load a thread may hold a finished answer for a while)."""
    total, killed_after, concurrency = 90, 30, 6
    answers: list[tuple[int, str, bool]] = []  # (status, upstream, sent after the victim died), as they came back
    entities: dict[str, set[str]] = {}  # text → the distinct entity lists it got
    resent_by_client = 0
    lock = threading.Lock()
    victim, victim_dead = replicas[0], threading.Event()

    def worker(texts: list[str]) -> None:
        nonlocal resent_by_client
        with httpx.Client(base_url=edge.url, timeout=60, verify=edge.tls) as http:
            for text in texts:
                sent_after_death = victim_dead.is_set()
                try:
                    response = _ner(http, text)
                except httpx.RemoteProtocolError:  # the answer was cut after its head
                    with lock:
                        resent_by_client += 1
                    response = _ner(http, text)
                with lock:
                    answers.append((response.status_code, response.headers.get("x-upstream", ""), sent_after_death))
                    if response.status_code == 200:
                        # Spans, not the probabilities: their last digits vary with what a text is batched with.
                        spans = [(e["type"], e["start"], e["end"]) for e in response.json()["entities"]]
                        entities.setdefault(text, set()).add(json.dumps(spans))
                    if len(answers) == killed_after:
                        victim.process.send_signal(signal.SIGKILL)
                        victim.process.wait(timeout=10)
                        victim_dead.set()

    texts = [TEXTS[i % len(TEXTS)] for i in range(total)]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, [texts[i::concurrency] for i in range(concurrency)]))

    assert victim.process.wait(timeout=10) == -signal.SIGKILL
    assert [status for status, _, _ in answers] == [200] * total, answers
    assert resent_by_client < concurrency  # at most the requests in flight at the kill
    assert all(len(distinct) == 1 for distinct in entities.values()), entities  # both replicas answer alike
    # What is sent once the victim is dead, the survivor answers (a retried request lists both
    # addresses, the survivor last); all but the requests in flight at the kill are sent then.
    survivor = f"127.0.0.1:{replicas[1].port}"
    after_death = [upstream for _, upstream, sent_after_death in answers if sent_after_death]
    assert len(after_death) >= total - killed_after - concurrency
    assert all(upstream.endswith(survivor) for upstream in after_death), after_death
