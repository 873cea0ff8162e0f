"""The synchronous and asynchronous clients: the same endpoints (:class:`~._core.Endpoints`)
over ``httpx.Client`` or ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import httpx

from model_serving_client._core import Call, Endpoints, Settings, build_request, next_step


class Client(Endpoints):
    """``Client("http://127.0.0.1:8000").ner("李鹏在北京")``.

    ``url`` defaults to ``$MODEL_SERVING_URL`` (else ``http://127.0.0.1:8000``), ``api_key`` to
    ``$MODEL_SERVING_API_KEY``. ``timeout`` is per attempt, in seconds; ``max_retries`` bounds
    the retries of 429/503 answers and broken connections. Use it as a context manager, or
    :meth:`close` it, to release its connections.
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 60.0, max_retries: int = 3):
        self.settings = Settings.of(url, api_key, timeout, max_retries)
        self._http = httpx.Client(base_url=self.settings.url, headers=self.settings.headers(), timeout=timeout)

    def _call(self, call: Call) -> Any:
        for attempt in itertools.count():
            response = error = None
            try:
                response = self._http.send(build_request(self._http, call))
            except httpx.TransportError as exc:
                error = exc
            wait, answer = next_step(self.settings, call, attempt, response, error)
            if wait is None:
                return answer
            time.sleep(wait)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(Endpoints):
    """The same methods as :class:`Client`, each returning an awaitable:
    ``async with AsyncClient() as client: await client.ner("李鹏在北京")``."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 60.0, max_retries: int = 3):
        self.settings = Settings.of(url, api_key, timeout, max_retries)
        self._http = httpx.AsyncClient(base_url=self.settings.url, headers=self.settings.headers(), timeout=timeout)

    async def _call(self, call: Call) -> Any:
        for attempt in itertools.count():
            response = error = None
            try:
                response = await self._http.send(build_request(self._http, call))
            except httpx.TransportError as exc:
                error = exc
            wait, answer = next_step(self.settings, call, attempt, response, error)
            if wait is None:
                return answer
            await asyncio.sleep(wait)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
