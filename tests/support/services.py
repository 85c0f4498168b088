"""Real PostgreSQL and Redis for tests: a fresh database per test, a key prefix per run.

A missing service fails the test with a message saying what to start; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.db import migrate
from gateway.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "VISIONGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("VISIONGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The databases the storage tests run on.
DATABASE_BACKENDS = ("sqlite", "postgresql")


async def _admin_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required at {POSTGRES_ADMIN_URL} "
            f"(set VISIONGATE_TEST_POSTGRES_URL): {exc}",
            pytrace=False,
        )


async def postgres_database() -> tuple[str, str]:
    """Create a uniquely named empty database; returns (name, SQLAlchemy URL)."""
    name = f"visiongate_test_{uuid.uuid4().hex[:12]}"
    connection = await _admin_connection()
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


async def drop_postgres_database(name: str) -> None:
    """Drop a test database, whoever is still connected."""
    connection = await _admin_connection()
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def empty_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the URL of an empty database of the given backend, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'visiongate.db'}"
        return
    name, url = await postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(name)


async def migrated(url: str) -> str:
    """Migrate the database at ``url`` to head (Alembic runs its own loop: in a thread)."""
    await asyncio.to_thread(migrate.upgrade, Settings(), "head", url)
    return url


async def require_redis() -> str:
    """The test Redis URL, after checking it answers."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(
            f"Redis is required at {REDIS_URL} (set VISIONGATE_TEST_REDIS_URL): {exc}",
            pytrace=False,
        )
    finally:
        await client.aclose()
    return REDIS_URL


async def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under a test's prefix."""
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def unique_prefix() -> str:
    """A Redis key prefix nobody else uses."""
    return f"visiongate-test-{uuid.uuid4().hex[:12]}:"
