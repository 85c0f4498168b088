"""``api_keys.last_used_at``, written in batches rather than once per request."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import background
from gateway.db.models import ApiKey

log = logging.getLogger("visiongate.auth")


class LastUsedWriter:
    """Collects the latest use of each key and writes them all every ``interval_s``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval_s: float) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._pending: dict[int, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def touch(self, key_id: int, when: datetime) -> None:
        """Note a use; costs a dict write."""
        self._pending[key_id] = when

    async def flush(self) -> None:
        """Write every pending use in one statement."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(ApiKey),
                    [{"id": key_id, "last_used_at": when} for key_id, when in batch.items()],
                )
        except Exception:
            # Put them back (newer uses win) so the next flush tries again.
            for key_id, when in batch.items():
                self._pending.setdefault(key_id, when)
            raise

    def start(self) -> None:
        """Flush periodically in the background."""
        self._task = asyncio.create_task(self._run(), name="visiongate-last-used")

    async def close(self) -> None:
        """Stop and write what is left."""
        await background.stop(self._task)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except Exception:
                log.warning("writing last_used_at failed; retrying next interval", exc_info=True)
