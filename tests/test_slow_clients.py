"""Slow and idle clients against the real server (``python -m app.server`` on loopback): a
flood of half-sent request heads is dropped within the head timeout while normal clients keep
being answered; connections beyond the cap are closed at once; a trickled body gets 408."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from bench.serve import Server

pytestmark = [pytest.mark.slow, pytest.mark.server]

HALF_HEAD = b"POST /v1/spectra HTTP/1.1\r\nHost: x\r\nContent-Type: app"


@pytest.fixture(scope="module")
def server(tiny_spectra_store):
    env = {"APP_MODEL_ROOT": str(tiny_spectra_store), "APP_HEADER_TIMEOUT_S": "2", "APP_BODY_TIMEOUT_S": "2",
           "APP_MAX_CONNECTIONS": "400"}
    with Server(env) as server:
        yield server


def _open(port: int, n: int, payload: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if payload:
            s.sendall(payload)
        sockets.append(s)
    return sockets


def _closed_by_server(s: socket.socket, within_s: float) -> bool:
    s.settimeout(within_s)
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_half_open_connections_are_dropped_while_others_are_answered(server):
    flood = _open(server.port, 300, HALF_HEAD)
    try:
        started = time.monotonic()
        for _ in range(5):  # answered during the flood
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert all(_closed_by_server(s, within_s=6) for s in flood)
        assert time.monotonic() - started < 8
    finally:
        for s in flood:
            s.close()
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_connections_beyond_the_cap_are_closed_at_once(server):
    idle = _open(server.port, 450, b"")
    try:
        closed_at_once = sum(_closed_by_server(s, within_s=0.2) for s in idle[400:])
        assert closed_at_once >= 45  # the 50 beyond the cap (a few may have raced the count)
    finally:
        for s in idle:
            s.close()
    time.sleep(0.5)
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_trickled_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/spectra HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"spe")
        s.settimeout(10)
        started, answer = time.monotonic(), b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 6


def test_an_oversize_header_is_refused(server):
    response = httpx.get(f"{server.url}/healthz", headers={"X-Big": "a" * 200_000}, timeout=10)
    assert response.status_code == 431 and response.json()["error"]["code"] == "headers_too_large"
