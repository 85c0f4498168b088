"""Fixtures shared by tests/db, tests/admin and tests/limits: a migrated database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db.engine import create_engine, session_factory
from gateway.settings import Settings
from tests.db.services import BACKENDS, empty_database, migrated


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database, SQLite or PostgreSQL."""
    async for url in empty_database(request.param, tmp_path):
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database."""
    await migrated(database_url)
    engine = create_engine(Settings(), database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the migrated database."""
    return session_factory(engine)
