"""The tiers' limits, held in memory and reloaded whenever the config revision moves.

A tier the catalog has not seen yet (created since the last reload: a key on it can be
looked up before the revision poll reloads the catalog) is read at once, so it is never
taken for an unlimited one.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.models import Tier, TierLimit
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
        self._tiers: frozenset[str] = frozenset()
        self._reloading = asyncio.Lock()
        watcher.subscribe(self.reload)

    async def reload(self) -> None:
        """Read every tier's limits."""
        async with self._sessions() as session:
            tiers = frozenset((await session.scalars(select(Tier.name))).all())
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
        self._limits, self._tiers = limits, tiers

    async def limits(self, tier: str, model: str) -> LimitSet:
        """:meth:`limits_for`, after reading the tiers again if ``tier`` is new to the catalog."""
        if tier not in self._tiers:
            async with self._reloading:
                if tier not in self._tiers:  # not read meanwhile by another request
                    await self.reload()
        return self.limits_for(tier, model)

    def limits_for(self, tier: str, model: str) -> LimitSet:
        """The limits for one model in one tier; a tier with no rows at all is unlimited."""
        models = self._limits.get(tier, {})
        return models.get(model) or models.get(ANY_MODEL) or UNLIMITED
