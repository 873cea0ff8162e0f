"""Who may call what, and how often: API keys with scopes, per-key and per-address rate limits.

Every protected route depends on :func:`require` with the scope it needs and is an
:class:`AccessRoute`, which checks the caller before the request body is read (an unknown caller
must not make the server parse megabytes). The policy (docs/security.md):

- with a keys file: a key is needed everywhere but the health probes, the docs and the demo
  page's files; task endpoints need ``predict`` (or ``predict:<task>``), reloads ``admin``,
  ``/metrics`` ``metrics``, ``GET /v1/models`` any valid key;
- without one: predictions and the catalogue are open (``make run`` on loopback), reloads
  answer 403 saying how to configure a key.

Each caller is counted against its limits (a key's own, the default for keys, or the
anonymous limit per client address) in memory or in Redis, so replicas share them. Wrong keys
are counted per address: past ``auth_failure_limit`` the address's wrong keys get 429 until its
window passes, while a right key from it is still answered (no one can lock a caller out).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from urllib.parse import quote

from typing import Any, Callable, Coroutine

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse_many
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from app.keys import ApiKey, KeyStore
from app.settings import Settings

log = logging.getLogger("app.auth")
audit_log = logging.getLogger("app.audit")

REALM = 'Bearer realm="model-serving"'
# Declared so the OpenAPI schema has both schemes and /docs an "Authorize" button; the
# headers are read by AccessControl itself (a malformed one is a failed attempt, not "no key").
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


@dataclass(frozen=True)
class Caller:
    """Who is calling: a key's id, or ``None`` for an anonymous caller known by its address."""

    key_id: str | None
    address: str

    @property
    def identity(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"address:{self.address}"


def _storage_uri(settings: Settings) -> str:
    """Where the counters live, with the password from its file (never from the URL in the settings)."""
    uri = settings.rate_limit_storage
    if settings.rate_limit_storage_password_file is None:
        return uri
    password = settings.rate_limit_storage_password_file.read_text().strip()
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://:{quote(password, safe='')}@{rest.rpartition('@')[2]}"


def _limits(text: str | None) -> list[RateLimitItem]:
    return parse_many(text) if text else []


def _denied(status: int, message: str, authenticate: str | None = None) -> HTTPException:
    return HTTPException(status, message, headers={"WWW-Authenticate": authenticate} if authenticate else None)


class AccessControl:
    """The access policy and rate limits of one app (its settings, its keys, its counters)."""

    def __init__(self, settings: Settings):
        self.keys = KeyStore(settings.api_keys_file) if settings.api_keys_file else None
        self.default_key_limits = _limits(settings.default_key_rate_limit)
        self.anonymous_limits = _limits(settings.anonymous_rate_limit)
        self.failure_limits = _limits(settings.auth_failure_limit)
        self._key_limits: dict[str, list[RateLimitItem]] = {}
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(f"async+{_storage_uri(settings)}"))
        self._storage_failed_at = -math.inf

    @property
    def open(self) -> bool:
        return self.keys is None

    async def authorize(self, request: Request, scope: str | None) -> tuple[Caller, dict[str, str]]:
        """The caller if it may call with ``scope`` (``None``: any valid key), with the
        ``RateLimit-*`` headers for its answer; else an HTTPException (401, 403 or 429)."""
        address = request.client.host if request.client else "unknown"
        if self.keys is None:
            if scope == "admin":
                audit_log.warning("admin action denied", extra={"key_id": None, "address": address, "action": request.url.path, "outcome": "no keys configured"})
                raise _denied(403, "admin endpoints are disabled until API keys are configured: create one with "
                              "`python -m app.keys create --id admin --scopes admin --file keys.yaml` and start the "
                              "service with APP_API_KEYS_FILE=keys.yaml")
            caller = Caller(None, address)
            return caller, await self._count(caller, self.anonymous_limits if scope else [])

        presented = self._presented_key(request)
        if presented is None:
            raise _denied(401, "this endpoint needs an API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`", REALM)
        key = self.keys.authenticate(presented) if presented else None
        if key is None:
            # Wrong keys are counted per address, and past the limit answered 429. A right key is
            # never refused for them: anyone could otherwise lock a victim out by guessing from
            # (or claiming) the victim's address. 256-bit keys are not found by guessing anyway.
            failures = f"auth-failures:{address}"
            log.warning("failed authentication", extra={"address": address, "path": request.url.path})
            if not await self._allowed(self.failure_limits, failures, hit=True):
                raise await self._too_many(self.failure_limits, failures, "too many failed authentications from this address")
            raise _denied(401, "unknown or malformed API key", f'{REALM}, error="invalid_token"')
        request.state.key_id = key.id
        if scope is not None and not key.allows(scope):
            if scope == "admin":
                audit_log.warning("admin action denied", extra={"key_id": key.id, "address": address, "action": request.url.path, "outcome": "missing scope"})
            raise _denied(403, f"the key {key.id!r} does not have the scope {scope!r}", f'{REALM}, error="insufficient_scope", scope="{scope}"')
        caller = Caller(key.id, address)
        return caller, await self._count(caller, self._limits_of(key))

    @staticmethod
    def _presented_key(request: Request) -> str | None:
        """The key from ``X-API-Key`` or ``Authorization: Bearer``; ``""`` for a header that is
        there but unusable (so it counts as a failed attempt); ``None`` when neither is sent."""
        api_key = request.headers.get("x-api-key")
        if api_key is not None:
            return api_key.strip()
        authorization = request.headers.get("authorization")
        if authorization is None:
            return None
        scheme, _, credentials = authorization.partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else ""

    def _limits_of(self, key: ApiKey) -> list[RateLimitItem]:
        if key.rate_limit is None:
            return self.default_key_limits
        if key.rate_limit not in self._key_limits:
            self._key_limits[key.rate_limit] = parse_many(key.rate_limit)
        return self._key_limits[key.rate_limit]

    async def _count(self, caller: Caller, limits: list[RateLimitItem]) -> dict[str, str]:
        """Count one request against ``limits``: 429 when one is spent, else the ``RateLimit-*``
        headers of the tightest."""
        if not limits:
            return {}
        if not await self._allowed(limits, caller.identity, hit=True):
            raise await self._too_many(limits, caller.identity, "rate limit exceeded")
        stats = await self._stats(limits, caller.identity)
        if not stats:
            return {}
        item, remaining, reset_s = min(stats, key=lambda s: s[1])
        return _rate_limit_headers(item, remaining, reset_s)

    async def _allowed(self, limits: list[RateLimitItem], identity: str, hit: bool) -> bool:
        """Whether ``identity`` is within every limit (and, with ``hit``, count one against each).
        If the storage cannot be reached the request is let through: a Redis outage must not
        take the service down with it (logged, at most once a minute)."""
        try:
            for item in limits:
                ok = await (self.limiter.hit(item, identity) if hit else self.limiter.test(item, identity))
                if not ok:
                    return False
        except Exception:  # noqa: BLE001 - storage errors are the storage's (connection, timeout)
            self._storage_failure()
        return True

    async def _stats(self, limits: list[RateLimitItem], identity: str) -> list[tuple[RateLimitItem, int, int]]:
        try:
            now = time.time()
            stats = [(item, await self.limiter.get_window_stats(item, identity)) for item in limits]
        except Exception:  # noqa: BLE001
            self._storage_failure()
            return []
        return [(item, s.remaining, max(0, math.ceil(s.reset_time - now))) for item, s in stats]

    async def _too_many(self, limits: list[RateLimitItem], identity: str, message: str) -> HTTPException:
        stats = await self._stats(limits, identity)
        spent = [s for s in stats if s[1] == 0] or stats
        item, remaining, reset_s = max(spent, key=lambda s: s[2]) if spent else (limits[0], 0, 1)
        retry_after = max(1, reset_s)
        headers = {**_rate_limit_headers(item, 0, retry_after), "Retry-After": str(retry_after)}
        return HTTPException(429, f"{message}: {item.amount} per {_window(item)}; retry in {retry_after} s", headers=headers)

    def _storage_failure(self) -> None:
        now = time.monotonic()
        if now - self._storage_failed_at > 60:
            self._storage_failed_at = now
            log.exception("rate-limit storage unreachable; requests are let through uncounted")


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def _rate_limit_headers(item: RateLimitItem, remaining: int, reset_s: int) -> dict[str, str]:
    """The IETF draft's fields (draft-ietf-httpapi-ratelimit-headers): limit, remaining, seconds to reset."""
    return {"RateLimit-Limit": str(item.amount), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset_s)}


class Authorize:
    """The dependency :func:`require` returns: it declares the security schemes in the OpenAPI
    schema and hands the route the :class:`Caller` that :class:`AccessRoute` admitted."""

    def __init__(self, scope: str | None):
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        _bearer_credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
        _api_key: str | None = Depends(_api_key_header),
    ) -> Caller:
        return request.state.caller


def require(scope: str | None) -> Authorize:
    """A dependency admitting callers with ``scope`` (``None``: any valid key) under the app's
    policy; the route must be an :class:`AccessRoute` (its router's ``route_class``)."""
    return Authorize(scope)


class AccessRoute(APIRoute):
    """A route that authorises its caller, if it depends on :func:`require`, before FastAPI reads
    the body and solves the other dependencies, and adds the ``RateLimit-*`` headers to the answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scopes = [d.call.scope for d in self.dependant.dependencies if isinstance(d.call, Authorize)]
        if not scopes:
            return handler
        if len(scopes) > 1:
            raise ValueError(f"{self.path}: more than one require() dependency")

        async def authorized_handler(request: Request) -> Response:
            request.state.caller, headers = await request.app.state.access.authorize(request, scopes[0])
            response = await handler(request)
            response.headers.update(headers)
            return response

        return authorized_handler


def caller_identity(request: Request) -> str:
    """Who a task request comes from (its key, or its address when the service is open): what
    a traffic split keeps sticky."""
    return request.state.caller.identity


def task_router(task: str) -> APIRouter:
    """The router of a task's prediction endpoints. Who may call them: anyone without a keys
    file; with one, keys with ``predict`` or ``predict:<task>``."""
    return APIRouter(tags=[task], route_class=AccessRoute, dependencies=[Depends(require(f"predict:{task}"))])
