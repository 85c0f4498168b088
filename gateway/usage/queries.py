"""Reading usage back: this month's tokens (the quota baseline) and the admin summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.models import Organisation, UsageRecord


async def tokens_since(session: AsyncSession, org_id: int, model: str, since: datetime) -> int:
    """Prompt plus completion tokens an organisation used on a model since ``since``."""
    total = await session.scalar(
        select(
            func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)
        ).where(
            UsageRecord.org_id == org_id,
            UsageRecord.model == model,
            UsageRecord.started_at >= since,
        )
    )
    return int(total or 0)


class MonthlyTokens:
    """The quota baseline: tokens used this month per org and model, read once per process.

    After the first read the limiter's own counter (in Redis, or in this process) carries
    on; this is only what it starts from.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._cache: dict[tuple[int, str, datetime], int] = {}

    async def __call__(self, org_id: int, model: str, month_start: datetime) -> int:
        """Tokens used since ``month_start``."""
        key = (org_id, model, month_start)
        if key not in self._cache:
            async with self._sessions() as session:
                self._cache[key] = await tokens_since(session, org_id, model, month_start)
        return self._cache[key]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Totals for one organisation and model."""

    organisation: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    images: int
    video_frames: int


async def usage_summary(
    session: AsyncSession, organisation: str | None = None, since: datetime | None = None
) -> list[UsageRow]:
    """Totals per organisation and model, optionally for one organisation and from a date."""
    query = (
        select(
            Organisation.name,
            UsageRecord.model,
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            func.coalesce(func.sum(UsageRecord.images), 0),
            func.coalesce(func.sum(UsageRecord.video_frames), 0),
        )
        .join(Organisation, UsageRecord.org_id == Organisation.id)
        .group_by(Organisation.name, UsageRecord.model)
        .order_by(Organisation.name, UsageRecord.model)
    )
    if organisation is not None:
        query = query.where(Organisation.name == organisation)
    if since is not None:
        query = query.where(UsageRecord.started_at >= since)
    return [
        UsageRow(name, model, int(n), int(p), int(c), int(i), int(v))
        for name, model, n, p, c, i, v in await session.execute(query)
    ]
