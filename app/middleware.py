"""ASGI middleware: request ids with structured access logs, a request-body size limit, and
security headers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.batching import Arrivals
from app.errors import BODY_FIELD, SLOW_BODY_FIELD, error_body
from app.metrics import Metrics

access_log = logging.getLogger("app.access")
REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


class RequestContextMiddleware:
    """Assigns a request id (or keeps the caller's ``X-Request-ID`` if it is 1–128 of ``[A-Za-z0-9._-]``),
    echoes it, logs one line per request.

    With ``metrics``, it also counts and times each request by route template and status; with
    ``arrivals``, it tells the batchers which requests are in the server (see :class:`Arrivals`).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None, arrivals: Arrivals | None = None):
        self.app = app
        self.metrics = metrics
        self.arrivals = arrivals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(b"x-request-id", b"")
        # A caller's id is kept only when it is plainly an id: it goes into logs and headers.
        request_id = offered.decode("ascii") if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        if self.arrivals is not None:
            self.arrivals.server_began()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.arrivals is not None:
                self.arrivals.server_ended()
            seconds = time.perf_counter() - started
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],  # never the query string: it may hold anything
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "key_id": scope["state"].get("key_id"),  # the key's id, never the key
                },
            )
            if self.metrics is not None:
                # The route template, not the path, so unknown URLs cannot blow up the label set.
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.observe_request(route, scope["method"], status, seconds)


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parsing passes it through as a 413."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body exceeds {max_bytes} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, timeout_s: float):
        super().__init__(408, f"the request body did not arrive within {timeout_s:g} s")


class BodySizeLimitMiddleware:
    """Rejects request bodies over ``max_bytes`` with 413, whether or not Content-Length is sent,
    and bodies not received within ``timeout_s`` with 408 (a client trickling its body would
    otherwise hold a connection and a task for as long as it likes)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 60.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        response_started = False
        body_complete = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def counting_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:  # later messages can only be the disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                raise BodyTooSlow(self.timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                body_complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._reject(send)
        except BodyTooSlow as exc:
            if not response_started:
                await self._reject(send, 408, error_body("request_timeout", exc.detail, [SLOW_BODY_FIELD]))

    async def _reject(self, send: Send, status: int = 413, content: dict | None = None) -> None:
        content = content or error_body("body_too_large", BodyTooLarge(self.max_bytes).detail, [BODY_FIELD])
        body = json.dumps(content).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


# The demo page loads only its own files and calls only this origin; /docs (Swagger UI) loads
# its scripts from a CDN, so elsewhere the policy only forbids framing.
DEMO_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    """``X-Content-Type-Options``, ``Referrer-Policy`` and a Content-Security-Policy (the demo
    page's own, ``frame-ancestors 'none'`` elsewhere) on every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        csp = DEMO_PAGE_CSP if path == "/" or path.startswith("/demo/") else "frame-ancestors 'none'"
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", csp.encode()),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
