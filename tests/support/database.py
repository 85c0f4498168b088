"""Organisations and keys made as the CLI makes them; the SQL an engine runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin import service
from gateway.db.engine import sqlite_writer
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


def statements(engine: AsyncEngine) -> list[str]:
    """Every SQL statement the engine runs from now on (on SQLite, its usage writer's too)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    if engine.dialect.name == "sqlite":
        event.listen(sqlite_writer(engine, Settings()), "before_cursor_execute", record)
    return seen
