"""Dynamic micro-batching: requests for one model queue up and run together.

The same knobs as TensorFlow Serving's batcher (``max_batch_size``,
``batch_timeout_micros``, ``max_enqueued_batches``, ``num_batch_threads``),
in asyncio form: callers ``await submit(items)``; a worker task gathers queued
requests until the batch is full or the oldest one has waited ``max_wait_ms``,
runs the whole batch in a thread of its own, and hands each caller its slice
of the results, in order.

With an :class:`Arrivals` tracker (the service passes one, fed by its HTTP
middleware), a batch waits for company only while some request is in the server
but not yet queued: a lone client, or clients that are all queued already, gain
nothing from the wait, so their batch runs at once.

Each request comes with a context (the service passes the model version it was admitted with):
a batch holds requests of one context only, the oldest request's, and the batch function is
called with it.

A request's items are never split across batches, so one larger than
``max_batch_size`` runs as a batch of its own. The queue is bounded in items:
when it is full, ``submit`` fails at once with :class:`QueueFull` rather than
letting latency grow without limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from pydantic import BaseModel, Field

log = logging.getLogger("app.batching")

Item = TypeVar("Item")
Result = TypeVar("Result")

# Runs in a worker thread: (the batch's context, its items) → one result per item.
BatchFunction = Callable[[Any, list[Any]], Sequence[Any]]


class BatchPolicy(BaseModel):
    """Batching settings for one model."""

    max_batch_size: int = Field(32, ge=1, description="most items run in one model call (1: batching off)")
    # 20 ms beat 5 ms in throughput and p99 at 32 clients for NER and spectra (bench/serve.py, docs/benchmark.md);
    # with the server's Arrivals a lone request does not wait at all.
    max_wait_ms: float = Field(
        20.0, ge=0, description="how long the oldest queued request may wait for company while more are arriving"
    )
    max_queue: int = Field(256, ge=1, description="most items waiting; beyond it requests are refused at once")
    batch_threads: int = Field(1, ge=1, description="batches of this model that may run at the same time")


class QueueFull(Exception):
    """The model's queue is full; ``retry_after`` is a hint in whole seconds."""

    def __init__(self, name: str, retry_after: int):
        super().__init__(f"the {name} queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class DeadlineExceeded(Exception):
    """The request was not answered within its deadline."""


class Closed(Exception):
    """The batcher is shutting down and takes no new requests."""


class Arrivals:
    """Whether another request may still join a batch: requests the server has begun (counted
    from the first byte read to the last byte sent) against those inside a batcher.

    A request being read, parsed or validated counts as arriving; so does one whose answer is
    being sent, which errs toward waiting (the policy's ``max_wait_ms`` still bounds it). All
    calls happen on the event loop, so plain counters suffice.
    """

    def __init__(self) -> None:
        self._in_server = 0
        self._in_batchers = 0
        self._listeners: list[Callable[[], None]] = []

    def expected(self) -> bool:
        return self._in_server > self._in_batchers

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever :meth:`expected` may have turned false."""
        self._listeners.append(wake)

    def server_began(self) -> None:
        self._in_server += 1

    def server_ended(self) -> None:
        self._in_server -= 1
        self._notify()

    def batcher_entered(self) -> None:
        self._in_batchers += 1
        self._notify()

    def batcher_left(self) -> None:
        self._in_batchers -= 1

    def _notify(self) -> None:
        for wake in self._listeners:
            wake()


class BatcherMetrics:
    """What a batcher reports; the default records nothing."""

    def observe_batch(self, name: str, size: int, seconds: float) -> None: ...

    def observe_rejection(self, name: str) -> None: ...


@dataclass(eq=False)
class _Job:
    items: list
    future: asyncio.Future
    context: Any = None
    enqueued: float = field(default_factory=time.monotonic)
    taken: bool = False  # popped from the queue into a batch


class MicroBatcher(Generic[Item, Result]):
    """Queues requests for one model and runs them in batches off the event loop."""

    def __init__(
        self,
        name: str,
        run_batch: BatchFunction,
        policy: BatchPolicy | None = None,
        metrics: BatcherMetrics | None = None,
        arrivals: Arrivals | None = None,
    ):
        self.name = name
        self.policy = policy or BatchPolicy()
        self._run_batch = run_batch
        self._metrics = metrics or BatcherMetrics()
        self._arrivals = arrivals
        self._pending: deque[_Job] = deque()
        self._queued_items = 0
        self._wakeup: asyncio.Event | None = None
        self._workers: list[asyncio.Task] = []
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._last_batch_seconds = 0.0

    @property
    def queued_items(self) -> int:
        return self._queued_items

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        if self._arrivals is not None:
            self._arrivals.subscribe(self._wakeup.set)
        self._executor = ThreadPoolExecutor(self.policy.batch_threads, thread_name_prefix=f"batch-{self.name}")
        self._workers = [asyncio.create_task(self._work(), name=f"batcher-{self.name}-{i}") for i in range(self.policy.batch_threads)]

    async def stop(self) -> None:
        """Refuse new requests, finish every queued one, then stop the workers."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, items: list[Item], timeout: float | None = None, context: Any = None) -> list[Result]:
        """Queue ``items`` and wait for their results, in order, from a batch of ``context``.

        Raises :class:`QueueFull` at once when there is no room (a request larger than
        ``max_queue`` is taken only when the queue is empty), :class:`DeadlineExceeded`
        after ``timeout`` seconds, :class:`Closed` during shutdown, and whatever the batch
        function raised for these items. A caller that is cancelled (a client that went
        away) leaves the queue at once.
        """
        if self._closing or self._wakeup is None:
            raise Closed(f"the {self.name} batcher is not running")
        if not items:
            return []
        # A request larger than the whole queue still gets in when nothing waits (it runs alone);
        # refusing it would refuse it forever.
        if self._queued_items and self._queued_items + len(items) > self.policy.max_queue:
            self._metrics.observe_rejection(self.name)
            raise QueueFull(self.name, self._retry_after())
        job = _Job(list(items), asyncio.get_running_loop().create_future(), context)
        self._pending.append(job)
        self._queued_items += len(job.items)
        self._wakeup.set()
        if self._arrivals is not None:
            self._arrivals.batcher_entered()
        try:
            return await asyncio.wait_for(job.future, timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"no answer from the {self.name} model within {timeout:g} s") from None
        finally:
            self._forget(job)
            if self._arrivals is not None:
                self._arrivals.batcher_left()

    def _forget(self, job: _Job) -> None:
        """Drop a job that is still queued (its caller gave up), freeing its slot."""
        # Checked first: a failed deque.remove formats the job's repr, results and all.
        if not job.taken:
            self._pending.remove(job)
            self._queued_items -= len(job.items)

    def _retry_after(self) -> int:
        batches_ahead = math.ceil(self._queued_items / self.policy.max_batch_size)
        return max(1, math.ceil(batches_ahead * self._last_batch_seconds / self.policy.batch_threads))

    def _take_batch(self) -> list[_Job]:
        """Pop queued jobs up to ``max_batch_size`` items (always at least one job): the oldest
        job's context's jobs in arrival order, up to the first that does not fit; jobs of other
        contexts keep their places. (Taking only consecutive jobs made batches of one when two
        loaded versions' requests alternate.)"""
        context = self._pending[0].context
        jobs: list[_Job] = []
        kept: deque[_Job] = deque()
        size, full = 0, False
        while self._pending:
            job = self._pending.popleft()
            if full or job.context is not context:
                kept.append(job)
                continue
            if jobs and size + len(job.items) > self.policy.max_batch_size:
                full = True
                kept.append(job)
                continue
            job.taken = True
            self._queued_items -= len(job.items)
            if job.future.done():  # cancelled or timed out while queued
                continue
            jobs.append(job)
            size += len(job.items)
        self._pending = kept
        return jobs

    def _company_expected(self) -> bool:
        return self._arrivals is None or self._arrivals.expected()

    async def _wait_for_company(self) -> None:
        """Wait until a full batch is queued, the oldest request has waited ``max_wait_ms``, or
        no other request is on its way."""
        wakeup = self._started_wakeup()
        deadline = self._pending[0].enqueued + self.policy.max_wait_ms / 1000
        while self._queued_items < self.policy.max_batch_size and self._company_expected() and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wakeup.clear()
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except TimeoutError:
                return
            if not self._pending:
                return

    def _started_wakeup(self) -> asyncio.Event:
        if self._wakeup is None:
            raise RuntimeError(f"the {self.name} batcher was not started")
        return self._wakeup

    async def _work(self) -> None:
        wakeup = self._started_wakeup()
        while True:
            while not self._pending:
                if self._closing:
                    return
                wakeup.clear()
                await wakeup.wait()
            await self._wait_for_company()
            jobs = self._take_batch()
            if self._pending:
                wakeup.set()  # let another worker start on the rest
            if jobs:
                await self._execute(jobs)

    async def _execute(self, jobs: list[_Job]) -> None:
        try:
            outcomes = await self._run(jobs)
        except Exception as exc:  # noqa: BLE001 - the batch failed: find out whose items did it
            if len(jobs) == 1:
                outcomes = [exc]
            else:
                log.warning("batch failed; retrying its requests one by one", extra={"model": self.name, "error": repr(exc)})
                outcomes = []
                for job in jobs:
                    if job.future.done():  # its caller gave up; nothing to answer
                        outcomes.append(None)
                        continue
                    try:
                        outcomes.extend(await self._run([job]))
                    except Exception as single_exc:  # noqa: BLE001
                        outcomes.append(single_exc)
        for job, outcome in zip(jobs, outcomes):
            if job.future.done():  # the caller gave up meanwhile
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    async def _run(self, jobs: list[_Job]) -> list[list]:
        """One model call over the jobs' items (one context); each job's slice of the results."""
        items = [item for job in jobs for item in job.items]
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._executor, self._run_batch, jobs[0].context, items)
        self._last_batch_seconds = time.perf_counter() - started
        self._metrics.observe_batch(self.name, len(items), self._last_batch_seconds)
        if len(results) != len(items):
            raise RuntimeError(f"the {self.name} batch function returned {len(results)} results for {len(items)} items")
        outcomes, offset = [], 0
        for job in jobs:
            outcomes.append(list(results[offset : offset + len(job.items)]))
            offset += len(job.items)
        return outcomes
