"""Runs the service under uvicorn with bounds on slow and idle clients: ``python -m app.server``.

uvicorn alone holds a connection that never finishes its request head for ever (its keep-alive
timeout starts only after a first response, and stops at the first byte), so a few thousand
half-open connections exhaust the process's file descriptors and lock every client out. Here
a connection must deliver each request head within ``APP_HEADER_TIMEOUT_S`` (from connecting,
or from the end of the previous response), and beyond ``APP_MAX_CONNECTIONS`` new connections
are closed at once. A request head over ``MAX_HEAD_BYTES`` gets 431 (httptools takes any size).
The body's own deadline is the app's (:class:`app.middleware.BodySizeLimitMiddleware`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import error_body
from app.settings import get_settings

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; nginx's default large buffers hold 32 KB


def _head_too_large_response() -> bytes:
    body = json.dumps(error_body("headers_too_large", f"the request head exceeds {MAX_HEAD_BYTES} bytes")).encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode() + body
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request head and a connection cap."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout_s = settings.header_timeout_s
        self.max_connections = settings.max_connections
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # of the request head still being received

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.close()  # frees the descriptor now; the client sees the connection closed
            return
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        awaiting_head = self._head_deadline is not None
        super().data_received(data)
        if awaiting_head and self._head_deadline is not None:  # the head is still not complete
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(_head_too_large_response())
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request's head, on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.server", description="Serve the API (uvicorn, bounded).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info", help="uvicorn's own log level")
    parser.add_argument(
        "--forwarded-allow-ips", default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        help="proxies (e.g. nginx) whose X-Forwarded-For names the client: addresses or CIDR ranges, comma-separated, "
        "never '*' (default: $FORWARDED_ALLOW_IPS or 127.0.0.1); rate limits per address use it",
    )
    args = parser.parse_args(argv)
    if "*" in (host.strip() for host in args.forwarded_allow_ips.split(",")):
        # With "*" every client may name its own address in X-Forwarded-For, and per-address
        # limits (failed keys, anonymous quotas) count whatever it chooses.
        parser.error("--forwarded-allow-ips / FORWARDED_ALLOW_IPS must name the proxies (addresses or CIDR ranges), not '*'")
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        http=BoundedHttpToolsProtocol,
        access_log=False,  # the app logs each request itself, as JSON
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )


if __name__ == "__main__":
    main()
