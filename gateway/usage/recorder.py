"""Usage records, committed in batches; ``record`` returns only once its row is committed."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db.engine import sqlite_writer
from gateway.db.models import UsageRecord
from gateway.settings import Settings

log = logging.getLogger("visiongate.usage")


@dataclass(frozen=True, slots=True)
class Usage:
    """One request's final accounting."""

    request_id: str
    org_id: int
    key_id: int | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    images: int
    video_frames: int
    status: str
    started_at: datetime
    first_token_ms: float | None
    duration_ms: float
    # True: the model never reported the prompt's size (the client left first); it is the
    # admission estimate.
    prompt_estimated: bool = False


_COLUMNS = tuple(field.name for field in fields(Usage))


class RecorderClosed(RuntimeError):
    """``record`` after ``close``: the record would not be written."""


class UsageRecorder:
    """Group concurrent records into one INSERT per batch.

    A request awaits its own record before sending its final chunk, so a response the client
    saw complete always has its usage committed. Batches form while a commit is in flight
    (group commit), plus an optional short wait, ``usage_flush_interval_s``.

    A batch is one Core ``INSERT`` (the ORM's bulk insert and its session cost several times
    more per batch, and records are written, never loaded). On PostgreSQL it runs on a pooled
    connection of the sessions' engine; on SQLite a thread of the recorder's own runs it
    with a plain pysqlite connection (:func:`~gateway.db.engine.sqlite_writer`): one hop
    there and back per batch instead of aiosqlite's hop for every step.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        engine = sessions.kw["bind"]
        assert isinstance(engine, AsyncEngine), "the sessions are bound to one async engine"
        self._engine = engine
        self._insert = insert(cast(Table, UsageRecord.__table__))
        self._writer: Engine | None = None
        self._connection: Connection | None = None  # the writer's, on its thread
        self._thread: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            self._writer = sqlite_writer(engine, settings)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="visiongate-usage")
        self._batch_size = settings.usage_batch_size
        self._interval_s = settings.usage_flush_interval_s
        self._attempts = settings.usage_commit_attempts
        self._pending: list[tuple[Usage, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def record(self, usage: Usage) -> None:
        """Queue a record and wait until it is committed; raises if it could not be."""
        if self._closed or self._task is None:
            raise RecorderClosed("usage recorder is not running")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((usage, future))
        self._wake.set()
        # Shielded: a client disconnecting must not cancel the write of its usage.
        await asyncio.shield(future)

    async def ping(self) -> None:
        """One round trip to the database the records go to; raises when it does not answer."""
        async with self._sessions() as session:
            await session.execute(text("SELECT 1"))

    def start(self) -> None:
        """Start the writer (call once the event loop runs)."""
        self._task = asyncio.create_task(self._run(), name="visiongate-usage")

    async def close(self) -> None:
        """Stop taking records and commit every one already queued."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._thread is not None and self._connection is not None:
            # The connection belongs to the thread (pysqlite): closed there.
            await asyncio.get_running_loop().run_in_executor(self._thread, self._disconnect)
        if self._thread is not None:
            self._thread.shutdown()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closed and len(self._pending) < self._batch_size and self._interval_s:
                await asyncio.sleep(self._interval_s)
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._batch_size]
                del self._pending[: self._batch_size]
                await self._commit(batch)
            if self._closed:
                return

    async def _commit(self, batch: list[tuple[Usage, asyncio.Future[None]]]) -> None:
        rows = [{name: getattr(usage, name) for name in _COLUMNS} for usage, _ in batch]
        error: Exception | None = None
        for attempt in range(self._attempts):
            try:
                if self._thread is None:
                    async with self._engine.begin() as connection:
                        await connection.execute(self._insert, rows)
                else:
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(self._thread, self._write, rows)
            except Exception as exc:
                error = exc
                log.warning("usage commit failed (attempt %d)", attempt + 1, exc_info=True)
                if attempt + 1 < self._attempts:
                    await asyncio.sleep(0.1 * 2**attempt)
            else:
                error = None
                break
        for _, future in batch:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """On the recorder's thread: the batch's INSERT, committed (SQLite).

        The thread keeps its connection: a checkout from the pool for every batch would
        cost about half as much again as the INSERT and its commit.
        """
        assert self._writer is not None
        if self._connection is None:
            self._connection = self._writer.connect()
        with self._connection.begin():
            self._connection.execute(self._insert, rows)

    def _disconnect(self) -> None:
        """On the recorder's thread: close its connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
