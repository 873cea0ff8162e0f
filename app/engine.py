"""The inference engine: one micro-batcher per task, whose batches each run on one loaded version.

A route leases the serving version when its request is admitted (:meth:`ModelRegistry.lease`),
prepares the request with that version's pipeline, queues the model inputs with the version, and
shapes the answer with the same pipeline: a reload meanwhile changes what the next requests
lease, never what this one is answered by. The batcher only puts requests of one version in a batch.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, TypeVar

from starlette.requests import Request

from app.batching import Arrivals, BatcherMetrics, BatchPolicy, MicroBatcher
from app.registry import LoadedModel, ModelRegistry

T = TypeVar("T")

# Runs in a worker thread: (the version a batch's requests leased, their items) → one result per item.
BatchFunction = Callable[[LoadedModel, list], list]


def read_with_pipeline(model: LoadedModel, items: list) -> list:
    """One model call through the version's pipeline: what every task's batches run."""
    return model.pipeline.read(items)


class ClientDisconnected(Exception):
    """The client went away before its answer was ready."""


class InferenceEngine:
    """Routes a task's requests through its micro-batcher, each batch on the version its
    requests were admitted with."""

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

    def register(self, task: str, run_batch: BatchFunction | None = None) -> None:
        """Serve ``task`` (call before :meth:`start`): a batch runs ``run_batch(model, items)`` in a
        worker thread, by default :func:`read_with_pipeline`."""
        policy = self.policies.get(task, BatchPolicy())
        self._batchers[task] = MicroBatcher(task, run_batch or read_with_pipeline, policy, self.metrics, self.arrivals)

    async def start(self) -> None:
        for batcher in self._batchers.values():
            await batcher.start()

    async def stop(self) -> None:
        """Finish what is queued (graceful shutdown), then stop every batcher."""
        await asyncio.gather(*(batcher.stop() for batcher in self._batchers.values()))

    def queue_depths(self) -> dict[str, int]:
        return {task: batcher.queued_items for task, batcher in self._batchers.items()}

    async def run(self, model: LoadedModel, items: list, request: Request | None = None) -> list:
        """Results for ``items`` (in order) from ``model``, a version the caller leased.

        With ``request``, a client that disconnects while waiting gives up its place
        in the queue (:class:`ClientDisconnected`).
        """
        answer = self._batchers[model.task].submit(items, self.request_timeout_s, model)
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
