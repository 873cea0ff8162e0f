"""MicroBatcher on plain Python batch functions: grouping, order, backpressure, deadlines, failures, shutdown.

Nothing here measures time: blocking is done with events, so the tests are deterministic.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from starlette.requests import Request

from app.batching import Arrivals, BatchPolicy, Closed, DeadlineExceeded, MicroBatcher, QueueFull
from app.engine import ClientDisconnected, _unless_disconnected
from tests.conftest import until


class Recorder:
    """A batch function that doubles numbers, remembers each batch, and can be held at a gate."""

    def __init__(self, fail_on=None):
        self.batches: list[list] = []
        self.contexts: list = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on = fail_on

    def __call__(self, context, items):
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        self.contexts.append(context)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot take {self.fail_on}")
        return [2 * x for x in items]


def run(coroutine):
    return asyncio.run(coroutine)


async def started(function, arrivals: Arrivals | None = None, **policy) -> MicroBatcher:
    batcher = MicroBatcher("test", function, BatchPolicy(**policy), arrivals=arrivals)
    await batcher.start()
    return batcher


async def held(first: list, **policy) -> tuple[Recorder, MicroBatcher, asyncio.Future]:
    """A batcher whose worker is busy: the batch ``first`` is held at the recorder's gate."""
    recorder = Recorder()
    recorder.gate.clear()
    batcher = await started(recorder, **policy)
    running = asyncio.ensure_future(batcher.submit(first))
    await until(recorder.entered.is_set)
    return recorder, batcher, running


def test_concurrent_requests_share_a_batch_and_get_their_own_results_in_order():
    async def scenario():
        recorder = Recorder()
        # A long wait and a batch size equal to the load: the batch runs when it is full.
        batcher = await started(recorder, max_batch_size=10, max_wait_ms=60_000)
        requests = [[i, 100 + i] for i in range(5)]
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return recorder, requests, answers

    recorder, requests, answers = run(scenario())
    assert answers == [[2 * x for x in r] for r in requests]
    assert len(recorder.batches) == 1 and sorted(recorder.batches[0]) == sorted(x for r in requests for x in r)


async def one_of_two_queued() -> tuple[Recorder, Arrivals, MicroBatcher, asyncio.Future]:
    """The server has begun two requests and the first is queued (max_wait_ms is a minute)."""
    recorder, arrivals = Recorder(), Arrivals()
    batcher = await started(recorder, arrivals, max_batch_size=10, max_wait_ms=60_000)
    arrivals.server_began()
    arrivals.server_began()
    first = asyncio.ensure_future(batcher.submit([1]))
    await until(lambda: batcher.queued_items == 1)
    return recorder, arrivals, batcher, first


def test_with_arrivals_a_batch_waits_only_while_another_request_is_in_the_server():
    """The first request's batch waits until the second is queued too, then both run together;
    a lone request runs at once."""
    async def scenario():
        recorder, arrivals, batcher, first = await one_of_two_queued()
        for _ in range(20):  # the worker gets every chance to run, and waits
            await asyncio.sleep(0)
        waited = not recorder.batches and not first.done()
        second = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.wait_for(asyncio.gather(first, second), 10)  # no minute-long wait
        arrivals.server_ended()
        arrivals.server_ended()
        arrivals.server_began()  # a lone request
        lone = await asyncio.wait_for(batcher.submit([3]), 10)
        arrivals.server_ended()
        await batcher.stop()
        return waited, recorder.batches, lone

    waited, batches, lone = run(scenario())
    assert waited and batches == [[1, 2], [3]] and lone == [6]


def test_with_arrivals_a_request_that_leaves_without_joining_releases_the_wait():
    async def scenario():
        recorder, arrivals, batcher, first = await one_of_two_queued()
        arrivals.server_ended()  # e.g. a request to another endpoint, or one refused by validation
        answer = await asyncio.wait_for(first, 10)
        await batcher.stop()
        return answer, recorder.batches

    answer, batches = run(scenario())
    assert answer == [2] and batches == [[1]]


def test_batches_never_exceed_the_limit_and_a_large_request_runs_alone():
    async def scenario():
        recorder, batcher, first = await held([0], max_batch_size=4, max_wait_ms=0)  # the rest queue behind it
        rest = [asyncio.ensure_future(batcher.submit(items)) for items in ([1, 2], [3, 4], [5], [6, 7, 8, 9, 10, 11])]
        await until(lambda: batcher.queued_items == 11)
        recorder.gate.set()
        await asyncio.gather(first, *rest)
        await batcher.stop()
        return recorder.batches

    batches = run(scenario())
    # Whole requests, in arrival order, up to 4 items; [5] cannot join [6..11], which runs alone.
    assert batches == [[0], [1, 2, 3, 4], [5], [6, 7, 8, 9, 10, 11]]


def test_full_queue_refuses_at_once_with_a_retry_hint():
    async def scenario():
        recorder, batcher, running = await held([1], max_batch_size=2, max_wait_ms=0, max_queue=3)
        queued = asyncio.ensure_future(batcher.submit([2, 3, 4]))
        await until(lambda: batcher.queued_items == 3)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit([5])
        recorder.gate.set()
        answers = await asyncio.gather(running, queued)
        await batcher.stop()
        return refused.value, answers

    refused, answers = run(scenario())
    assert refused.retry_after >= 1
    assert answers == [[2], [4, 6, 8]]


def test_a_request_larger_than_the_queue_runs_when_the_queue_is_empty():
    """E.g. a QA request whose passages make more windows than max_queue: refused only behind others."""
    async def scenario():
        recorder, batcher, running = await held([1], max_batch_size=2, max_wait_ms=0, max_queue=3)
        big = asyncio.ensure_future(batcher.submit([2, 3, 4, 5]))  # the queue is empty: taken
        await until(lambda: batcher.queued_items == 4)
        with pytest.raises(QueueFull):
            await batcher.submit([6, 7, 8, 9])  # behind it: refused
        recorder.gate.set()
        answers = await asyncio.gather(running, big)
        await batcher.stop()
        return answers, recorder.batches

    answers, batches = run(scenario())
    assert answers[1] == [4, 6, 8, 10] and batches == [[1], [2, 3, 4, 5]]


def test_deadline_and_cancellation_free_the_slot():
    async def scenario():
        recorder, batcher, running = await held([1], max_batch_size=1, max_wait_ms=0, max_queue=2)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit([2, 3], timeout=0.01)
        assert batcher.queued_items == 0
        gone = asyncio.ensure_future(batcher.submit([4, 5]))
        await until(lambda: batcher.queued_items == 2)
        gone.cancel()  # what the engine does when the client disconnects
        await until(lambda: batcher.queued_items == 0)
        recorder.gate.set()
        await running
        await batcher.stop()
        return recorder.batches

    # Neither the expired nor the cancelled request reached the model.
    assert run(scenario()) == [[1]]


def test_a_failing_request_does_not_take_its_batch_down():
    async def scenario():
        recorder = Recorder(fail_on=13)
        batcher = await started(recorder, max_batch_size=3, max_wait_ms=60_000)
        answers = await asyncio.gather(
            batcher.submit([1]), batcher.submit([13]), batcher.submit([2]), return_exceptions=True
        )
        after = await batcher.submit([3, 4, 5])  # the worker is still alive
        await batcher.stop()
        return answers, after

    (one, failed, two), after = run(scenario())
    assert one == [2] and two == [4] and after == [6, 8, 10]
    assert isinstance(failed, ValueError)


def test_stop_answers_everything_queued_then_refuses():
    async def scenario():
        recorder, batcher, first = await held([0], max_batch_size=2, max_wait_ms=0)
        pending = [first] + [asyncio.ensure_future(batcher.submit([i])) for i in range(1, 5)]
        await until(lambda: batcher.queued_items == 4)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0)
        with pytest.raises(Closed):
            await batcher.submit([9])
        recorder.gate.set()
        await stopping
        return [p.result() for p in pending]

    assert run(scenario()) == [[0], [2], [4], [6], [8]]


def test_a_client_that_disconnects_cancels_its_wait():
    async def scenario():
        async def receive():
            return {"type": "http.disconnect"}

        request = Request({"type": "http", "method": "POST", "headers": []}, receive)
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(ClientDisconnected):
            await _unless_disconnected(request, never)
        return never.cancelled()

    assert run(scenario())


def test_a_batch_holds_requests_of_one_context_only():
    async def scenario():
        recorder, batcher, first = await held([0], max_batch_size=10, max_wait_ms=0)
        # Queued behind the held batch: two versions interleaved, as during a reload.
        rest = [asyncio.ensure_future(batcher.submit([i], context=version)) for i, version in ((1, "v1"), (2, "v1"), (3, "v2"), (4, "v2"))]
        await until(lambda: batcher.queued_items == 4)
        recorder.gate.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.stop()
        return answers, recorder

    answers, recorder = run(scenario())
    assert answers == [[0], [2], [4], [6], [8]]
    assert recorder.batches == [[0], [1, 2], [3, 4]] and recorder.contexts == [None, "v1", "v2"]


def test_alternating_contexts_are_batched_by_context_each_in_arrival_order():
    async def scenario():
        recorder, batcher, first = await held([0], max_batch_size=3, max_wait_ms=0)
        # Two loaded versions answering requests pinned to each in turn.
        pinned = [(i, "v1" if i % 2 else "v2") for i in range(1, 9)]
        rest = [asyncio.ensure_future(batcher.submit([i], context=version)) for i, version in pinned]
        await until(lambda: batcher.queued_items == 8)
        recorder.gate.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.stop()
        return answers, recorder

    answers, recorder = run(scenario())
    assert answers == [[2 * i] for i in range(9)]
    # The oldest request's version first, up to a full batch; the other version's keep their order.
    assert recorder.batches == [[0], [1, 3, 5], [2, 4, 6], [7], [8]]
    assert recorder.contexts == [None, "v1", "v2", "v1", "v2"]
