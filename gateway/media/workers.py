"""The threads that decode media, shared fairly between organisations.

Decoding and validation are blocking CPU work, so they run on threads; this pool has its own
(``VISIONGATE_MEDIA_THREADS``, one per CPU by default) rather than asyncio's default pool, and
hands them out fairly: jobs wait in one queue per organisation, a free thread takes the next
job round-robin across the organisations waiting, and no organisation holds more than
``VISIONGATE_MEDIA_THREADS_PER_ORG`` threads at once (half of them by default). One
organisation's flood of slow videos therefore leaves threads for everyone else.

A thread cannot be stopped from outside, so a job is a function of a :class:`threading.Event`
that it checks between units of work (frames, packets, compressed blocks) and that is set when
the task awaiting the job is cancelled, e.g. when the client disconnects: the job raises
:class:`Cancelled` at its next check and its thread is free again. A job cancelled while it
waits leaves its queue at once. Docs: docs/media.md.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import TypeVar

from gateway.settings import Settings

T = TypeVar("T")
Job = Callable[[threading.Event], T]


class Cancelled(Exception):
    """Raised inside a job when the task awaiting it was cancelled."""


def check(cancelled: threading.Event) -> None:
    """Stop the job (raise :class:`Cancelled`) if nobody awaits it any more."""
    if cancelled.is_set():
        raise Cancelled


class MediaWorkers:
    """``threads`` threads, at most ``per_org`` of them held by one organisation at once."""

    def __init__(self, threads: int, per_org: int) -> None:
        self.threads = threads
        self.per_org = max(1, min(per_org, threads))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="visiongate-media")
        # Organisations with waiting jobs, in round-robin order (dicts keep insertion order).
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}
        self._held: Counter[int] = Counter()

    @property
    def running(self) -> int:
        """Jobs whose thread is busy right now (cancelled ones included until they stop)."""
        return sum(self._held.values())

    @property
    def waiting(self) -> int:
        """Jobs waiting for a thread."""
        return sum(len(queue) for queue in self._waiting.values())

    async def run(self, org_id: int, job: Job[T]) -> T:
        """``job(cancelled)`` on a worker thread once ``org_id``'s turn comes; its result."""
        await self._turn(org_id)
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        try:
            future = self._pool.submit(job, cancelled)
        except BaseException:
            self._release(org_id)
            raise

        def finished(_: object) -> None:
            # The thread is free only once the job has returned, whenever that is.
            with suppress(RuntimeError):  # the loop has closed: nobody to tell
                loop.call_soon_threadsafe(self._release, org_id)

        future.add_done_callback(finished)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def _turn(self, org_id: int) -> None:
        turn = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(org_id, deque()).append(turn)
        self._dispatch()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # granted, then cancelled: hand it on
                self._release(org_id)
            else:
                queue = self._waiting[org_id]
                queue.remove(turn)
                if not queue:
                    del self._waiting[org_id]
            raise

    def _free(self) -> bool:
        return self.running < self.threads

    def _release(self, org_id: int) -> None:
        self._held[org_id] -= 1
        if not self._held[org_id]:
            del self._held[org_id]
        self._dispatch()

    def _dispatch(self) -> None:
        """Give free threads to waiting jobs, round-robin over the organisations."""
        while self._free():
            org_id = next((o for o in self._waiting if self._held[o] < self.per_org), None)
            if org_id is None:
                return
            queue = self._waiting.pop(org_id)
            turn = queue.popleft()
            if queue:  # to the back of the round
                self._waiting[org_id] = queue
            self._held[org_id] += 1
            turn.set_result(None)


@functools.cache
def _workers(threads: int, per_org: int) -> MediaWorkers:
    return MediaWorkers(threads, per_org)


def for_settings(settings: Settings) -> MediaWorkers:
    """This process's workers, sized as ``settings`` say."""
    threads = settings.media_threads or os.cpu_count() or 1
    per_org = settings.media_threads_per_org or (threads + 1) // 2
    return _workers(threads, per_org)
