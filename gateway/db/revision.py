"""The config revision: a counter bumped by every admin change, polled by every worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import background
from gateway.db.models import ConfigRevision

REVISION_ROW = 1

log = logging.getLogger("visiongate.db")


async def bump_revision(session: AsyncSession) -> None:
    """Bump the revision inside the caller's transaction, so it commits with the change."""
    await session.execute(
        update(ConfigRevision)
        .where(ConfigRevision.id == REVISION_ROW)
        .values(revision=ConfigRevision.revision + 1)
    )


async def read_revision(session: AsyncSession) -> int:
    """The current revision."""
    value = await session.scalar(
        select(ConfigRevision.revision).where(ConfigRevision.id == REVISION_ROW)
    )
    if value is None:
        raise RuntimeError("config_revision row missing: run `visiongate db upgrade`")
    return int(value)


Listener = Callable[[], Awaitable[None]]


class RevisionWatcher:
    """Polls the config revision and tells listeners when it moved.

    Caches built on it are trusted only while ``is_fresh()``: a poll succeeded within two
    intervals. So a revocation is seen within about one interval, and if polling stalls the
    caches stop being trusted after two intervals instead of serving stale answers.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._clock = clock
        self._listeners: list[Listener] = []
        self._revision: int | None = None
        self._last_success = -float("inf")
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` after every change of revision."""
        self._listeners.append(listener)

    def is_fresh(self) -> bool:
        """Whether the last successful poll is recent enough to trust caches."""
        return self._clock() - self._last_success <= 2 * self._interval_s

    async def poll(self) -> None:
        """Read the revision once; notify listeners if it changed."""
        async with self._sessions() as session:
            revision = await read_revision(session)
        self._last_success = self._clock()
        if revision != self._revision:
            self._revision = revision
            for listener in self._listeners:
                await listener()

    async def start(self) -> None:
        """First poll (raises if the database is unusable), then poll in the background."""
        await self.poll()
        self._task = asyncio.create_task(self._run(), name="visiongate-revision-watcher")

    async def close(self) -> None:
        """Stop polling."""
        await background.stop(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.poll()
            except Exception:
                # The database may be briefly away; is_fresh() turns false and callers go to
                # the database directly until a poll succeeds again.
                log.warning("config revision poll failed", exc_info=True)
