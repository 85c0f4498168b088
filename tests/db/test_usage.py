"""Usage records: committed before record() returns, batched, flushed on close; monthly totals."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db.engine import create_engine, session_factory
from gateway.db.models import UsageRecord
from gateway.settings import Settings
from gateway.usage import MonthlyTokens, RecorderClosed, Usage, UsageRecorder
from tests.support.database import new_key, statements


def usage(org_id: int, key_id: int, tokens: int = 10, when: datetime | None = None) -> Usage:
    """A completed request's usage."""
    return Usage(
        request_id=uuid.uuid4().hex,
        org_id=org_id,
        key_id=key_id,
        model="vlm",
        prompt_tokens=tokens,
        completion_tokens=tokens,
        images=1,
        video_frames=0,
        status="completed",
        started_at=when or datetime.now(UTC),
        first_token_ms=12.5,
        duration_ms=40.0,
    )


async def count_rows(url: str) -> int:
    """Rows visible to a brand-new connection: what is committed."""
    engine = create_engine(Settings(), url)
    try:
        async with session_factory(engine)() as session:
            return int(await session.scalar(select(func.count(UsageRecord.id))) or 0)
    finally:
        await engine.dispose()


async def test_record_returns_once_committed(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    created = await new_key(sessions)
    recorder = UsageRecorder(sessions, Settings())
    recorder.start()
    await recorder.record(usage(created.key.org_id, created.key.id))
    assert await count_rows(database_url) == 1
    await recorder.close()


async def test_concurrent_records_share_commits(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, database_url: str
) -> None:
    created = await new_key(sessions)
    recorder = UsageRecorder(sessions, Settings())
    recorder.start()
    seen = statements(engine)
    await asyncio.gather(
        *(recorder.record(usage(created.key.org_id, created.key.id)) for _ in range(100))
    )
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert 1 <= len(inserts) < 10
    assert await count_rows(database_url) == 100
    await recorder.close()


async def test_close_flushes_queued_records_then_refuses(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    created = await new_key(sessions)
    recorder = UsageRecorder(sessions, Settings(usage_flush_interval_s=5.0))
    recorder.start()
    pending = [
        asyncio.create_task(recorder.record(usage(created.key.org_id, created.key.id)))
        for _ in range(5)
    ]
    await asyncio.sleep(0)
    await recorder.close()
    await asyncio.gather(*pending)
    assert await count_rows(database_url) == 5
    with pytest.raises(RecorderClosed):
        await recorder.record(usage(created.key.org_id, created.key.id))


async def test_a_cancelled_request_still_has_its_usage_written(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    created = await new_key(sessions)
    recorder = UsageRecorder(sessions, Settings(usage_flush_interval_s=0.2))
    recorder.start()
    task = asyncio.create_task(recorder.record(usage(created.key.org_id, created.key.id)))
    await asyncio.sleep(0.05)
    task.cancel()  # the client went away while its final chunk waited
    await recorder.close()
    assert await count_rows(database_url) == 1


async def test_monthly_tokens_counts_this_month_only(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await new_key(sessions)
    org, key = created.key.org_id, created.key.id
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    recorder = UsageRecorder(sessions, Settings())
    recorder.start()
    await recorder.record(usage(org, key, tokens=50, when=month_start - timedelta(seconds=1)))
    await recorder.record(usage(org, key, tokens=100, when=month_start))
    await recorder.record(usage(org, key, tokens=7, when=now))
    await recorder.close()
    assert await MonthlyTokens(sessions)(org, "vlm", month_start) == 214
    assert await MonthlyTokens(sessions)(org, "other-model", month_start) == 0


async def test_recorded_rows_are_stored_as_the_orm_stores_them(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """The recorder (on SQLite its own thread and driver) writes what an ORM insert writes."""
    created = await new_key(sessions)
    when = datetime(2026, 3, 4, 5, 6, 7, 890_123, tzinfo=UTC)
    recorded = usage(created.key.org_id, created.key.id, when=when)
    recorder = UsageRecorder(sessions, Settings())
    recorder.start()
    await recorder.record(recorded)
    await recorder.close()
    async with sessions() as session, session.begin():
        fields = {name: getattr(recorded, name) for name in recorded.__dataclass_fields__}
        session.add(UsageRecord(**(fields | {"request_id": "by-the-orm"})))
    columns = [c.name for c in UsageRecord.__table__.columns if c.name not in ("id", "request_id")]
    query = f"SELECT {', '.join(columns)} FROM usage_records ORDER BY id"
    async with engine.connect() as connection:
        # The raw stored values, datetimes as text on SQLite: no type processing on the way back.
        raw = [tuple(row) for row in (await connection.exec_driver_sql(query)).all()]
    assert len(raw) == 2 and raw[0] == raw[1], raw
