"""Reading uploaded files, bounded like inference: a few threads, a short queue, a deadline.

Parsing a FITS file is CPU work done before a request reaches a model's queue. Left to the
shared thread pool, a flood of uploads would all be parsed at once, each holding its decompressed
bytes. Here at most ``workers`` requests read their files at a time, at most ``max_waiting``
wait for a turn (beyond that: :class:`QueueFull`, a 503 with ``Retry-After``), and a request
whose reading has not finished by its deadline is answered 504 (:class:`DeadlineExceeded`); its
worker stops at the next :meth:`Deadline.check` (between spectra), so it cannot hold a thread for long.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

from app.batching import DeadlineExceeded, QueueFull

T = TypeVar("T")


class Deadline:
    """A point in time a worker checks between steps of its work."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise DeadlineExceeded(f"the uploaded files were not read within {self.seconds:g} s")


class UploadWork:
    """At most ``workers`` uploads read at once and ``max_waiting`` waiting, each within ``timeout_s``."""

    def __init__(self, workers: int, max_waiting: int, timeout_s: float):
        self.workers = workers
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload")
        # Jobs running or waiting, counted until their thread is done with them (not until their
        # request gave up), so abandoned work still occupies its place.
        self._admitted = 0
        self._lock = threading.Lock()
        self._last_seconds = 1.0

    async def run(self, work: Callable[[Deadline], T]) -> T:
        """``work(deadline)`` in one of the upload threads, or QueueFull / DeadlineExceeded."""
        with self._lock:
            if self._admitted >= self.workers + self.max_waiting:
                turns = math.ceil((self._admitted - self.workers + 1) / self.workers)
                raise QueueFull("file-reading", max(1, math.ceil(turns * self._last_seconds)))
            self._admitted += 1
        deadline = Deadline(self.timeout_s)
        job = self._executor.submit(self._timed, work, deadline)
        job.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job)), self.timeout_s)
        except TimeoutError:
            raise DeadlineExceeded(f"the uploaded files were not read within {self.timeout_s:g} s") from None
        finally:
            job.cancel()  # a job still waiting for a thread is dropped; a running one stops at its deadline

    def _timed(self, work: Callable[[Deadline], T], deadline: Deadline) -> T:
        started = time.monotonic()
        try:
            return work(deadline)
        finally:
            self._last_seconds = max(0.01, time.monotonic() - started)

    def _release(self, _job: Future) -> None:
        with self._lock:
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
