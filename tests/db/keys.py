"""Test helpers: organisations and keys made through the admin service, as the CLI does."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin import service
from gateway.settings import Settings


async def new_key(
    sessions: async_sessionmaker[AsyncSession],
    org: str = "acme",
    tier: str = "free",
    expires_in: timedelta | None = None,
) -> service.CreatedKey:
    """An organisation (created if needed) and a fresh key for it."""
    async with sessions() as session, session.begin():
        try:
            await service.organisation(session, org)
        except service.AdminError:
            await service.create_organisation(session, org, tier)
        secret = Settings().key_secret.get_secret_value()
        return await service.create_key(session, secret, org, "test", expires_in)


async def revoke(sessions: async_sessionmaker[AsyncSession], key_id: int) -> None:
    """Revoke a key as `visiongate keys revoke` does."""
    async with sessions() as session, session.begin():
        await service.revoke_key(session, str(key_id))
