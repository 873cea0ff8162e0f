"""The inference engine: one micro-batcher per task, each running on the version now serving."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

from starlette.requests import Request

from app.batching import Arrivals, BatcherMetrics, BatchPolicy, MicroBatcher
from app.registry import LoadedModel, ModelRegistry

T = TypeVar("T")

# Runs in a worker thread: (model, items) → one result per item, in order.
TaskFunction = Callable[[LoadedModel, list[Any]], list[Any]]


class ModelUnavailable(Exception):
    """No version of the task is loaded."""


class ClientDisconnected(Exception):
    """The client went away before its answer was ready."""


class InferenceEngine:
    """Routes a task's requests through its micro-batcher.

    Each batch looks the serving model up when it starts, so a reload takes
    effect from the next batch on and a batch never mixes two versions.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        policies: dict[str, BatchPolicy],
        request_timeout_s: float,
        metrics: BatcherMetrics | None = None,
        arrivals: Arrivals | None = None,
    ):
        """``arrivals``: fed by the server's HTTP middleware; without it a batch waits for company
        until it is full or ``max_wait_ms`` has passed."""
        self.registry = registry
        self.policies = policies
        self.request_timeout_s = request_timeout_s
        self.metrics = metrics
        self.arrivals = arrivals
        self._batchers: dict[str, MicroBatcher] = {}

    def register(self, task: str, function: TaskFunction) -> None:
        """Serve ``task`` with ``function``; call before :meth:`start`."""

        def run_batch(items: list) -> tuple[list, int]:
            model = self.registry.get(task)
            if model is None:
                raise ModelUnavailable(f"no {task} model is loaded")
            return function(model, items), model.version

        policy = self.policies.get(task, BatchPolicy())
        self._batchers[task] = MicroBatcher(task, run_batch, policy, self.metrics, self.arrivals)

    async def start(self) -> None:
        for batcher in self._batchers.values():
            await batcher.start()

    async def stop(self) -> None:
        """Finish what is queued (graceful shutdown), then stop every batcher."""
        await asyncio.gather(*(batcher.stop() for batcher in self._batchers.values()))

    def queue_depths(self) -> dict[str, int]:
        return {task: batcher.queued_items for task, batcher in self._batchers.items()}

    async def run(self, task: str, items: list, request: Request | None = None) -> tuple[list, int]:
        """Results for ``items`` (in order) and the model version that produced them.

        With ``request``, a client that disconnects while waiting gives up its place
        in the queue (:class:`ClientDisconnected`).
        """
        if self.registry.get(task) is None:
            raise ModelUnavailable(f"no {task} model is loaded")
        answer = self._batchers[task].submit(items, self.request_timeout_s)
        if request is None:
            return await answer
        return await _unless_disconnected(request, answer)


async def _unless_disconnected(request: Request, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, cancelling it if the client disconnects first."""
    answer = asyncio.ensure_future(awaitable)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({answer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not answer.done():
            answer.cancel()
    if answer.cancelled():
        raise ClientDisconnected("the client disconnected before the answer was ready")
    return answer.result()


async def _disconnect(request: Request) -> None:
    # The body has been read, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
