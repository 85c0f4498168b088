"""The tiers' limits, held in memory and reloaded whenever the config revision moves."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.models import TierLimit
from gateway.db.revision import RevisionWatcher
from gateway.limits.policy import UNLIMITED, LimitSet

ANY_MODEL = "*"


class TierCatalog:
    """tier -> model -> LimitSet; a model without its own row gets the tier's ``*`` row."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], watcher: RevisionWatcher
    ) -> None:
        self._sessions = sessions
        self._limits: dict[str, dict[str, LimitSet]] = {}
        watcher.subscribe(self.reload)

    async def reload(self) -> None:
        """Read every tier's limits."""
        async with self._sessions() as session:
            rows = (await session.scalars(select(TierLimit))).all()
        limits: dict[str, dict[str, LimitSet]] = {}
        for row in rows:
            limits.setdefault(row.tier_name, {})[row.model] = LimitSet(
                rpm=row.rpm,
                rpd=row.rpd,
                tpm=row.tpm,
                tpd=row.tpd,
                concurrency=row.concurrency,
                monthly_tokens=row.monthly_tokens,
            )
        self._limits = limits

    def limits_for(self, tier: str, model: str) -> LimitSet:
        """The limits for one model in one tier; a tier with no rows at all is unlimited."""
        models = self._limits.get(tier, {})
        return models.get(model) or models.get(ANY_MODEL) or UNLIMITED
