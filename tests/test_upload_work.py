"""The upload workers: a flood of uploads waits in a short queue or gets 503 with Retry-After, and
reading that outlives the deadline gets 504 and stops at its next check."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.batching import DeadlineExceeded, QueueFull
from app.upload_work import UploadWork


def test_beyond_the_workers_and_the_queue_requests_are_refused_with_a_retry_hint():
    release = threading.Event()

    def slow(deadline):
        release.wait(5)
        return "read"

    async def scenario():
        work = UploadWork(workers=2, max_waiting=3, timeout_s=10)
        admitted = [asyncio.ensure_future(work.run(slow)) for _ in range(5)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull) as refused:
            await work.run(slow)
        release.set()
        answers = await asyncio.gather(*admitted)
        work.close()
        return refused.value, answers

    refused, answers = asyncio.run(scenario())
    assert answers == ["read"] * 5
    assert refused.retry_after >= 1


def test_reading_past_the_deadline_is_a_504_and_the_worker_stops_at_its_next_check():
    stopped = threading.Event()

    def endless(deadline):
        try:
            while True:
                deadline.check()
                time.sleep(0.01)
        except DeadlineExceeded:
            stopped.set()
            raise

    async def scenario():
        work = UploadWork(workers=1, max_waiting=0, timeout_s=0.2)
        with pytest.raises(DeadlineExceeded):
            await work.run(endless)
        # Abandoned work keeps its place until its thread is done with it.
        assert stopped.wait(2)
        await asyncio.sleep(0.05)
        assert await work.run(lambda deadline: "next") == "next"
        work.close()

    asyncio.run(scenario())
