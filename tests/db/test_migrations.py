"""The schema comes from migrations only, and matches the models."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db import migrate
from gateway.db.engine import create_engine
from gateway.db.models import Base, TierLimit
from gateway.settings import Settings
from tests.support.services import migrated


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_tiers_are_seeded(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        rows = {row.tier_name: row for row in (await session.scalars(select(TierLimit))).all()}
    assert set(rows) == {"free", "developer", "enterprise"}
    free, developer, enterprise = rows["free"], rows["developer"], rows["enterprise"]
    assert (free.model, free.rpm, free.rpd, free.tpm, free.tpd, free.concurrency) == (
        "*",
        30,
        1_000,
        30_000,
        500_000,
        4,
    )
    assert (developer.rpm, developer.rpd, developer.tpm, developer.tpd) == (
        1_000,
        500_000,
        300_000,
        None,
    )
    assert developer.concurrency == 64
    assert enterprise.concurrency == 512
    assert (enterprise.rpm, enterprise.rpd, enterprise.tpm, enterprise.tpd) == (None,) * 4


async def test_downgrade_removes_everything_and_upgrade_restores(database_url: str) -> None:
    settings = Settings()
    await asyncio.to_thread(migrate.upgrade, settings, "head", database_url)
    assert await migrate.current_revision(settings, database_url) == migrate.head_revision()
    await asyncio.to_thread(migrate.downgrade, settings, "base", database_url)
    assert await migrate.current_revision(settings, database_url) is None
    engine = create_engine(settings, database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert set(tables) <= {"alembic_version"}
    finally:
        await engine.dispose()
    await asyncio.to_thread(migrate.upgrade, settings, "head", database_url)
    assert await migrate.current_revision(settings, database_url) == migrate.head_revision()


async def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    url = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    engine = create_engine(Settings(), url)
    try:
        async with engine.connect() as connection:
            assert (await connection.scalar(text("PRAGMA journal_mode"))) == "wal"
            assert (await connection.scalar(text("PRAGMA busy_timeout"))) == 5_000
    finally:
        await engine.dispose()


async def test_0003_adds_admin_tokens_and_deleted_organisations_and_goes_back(
    database_url: str,
) -> None:
    settings = Settings()
    await asyncio.to_thread(migrate.upgrade, settings, "0002", database_url)
    engine = create_engine(settings, database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO organisations (name, tier_name, created_at) VALUES (:n, :t, :c)"),
                {"n": "kept", "t": "free", "c": datetime.now(UTC)},
            )
        await asyncio.to_thread(migrate.upgrade, settings, "0003", database_url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("organisations")}
            )
            deleted = await connection.scalar(
                text("SELECT deleted_at FROM organisations WHERE name = 'kept'")
            )
        assert "admin_tokens" in tables and "deleted_at" in columns and deleted is None

        await asyncio.to_thread(migrate.downgrade, settings, "0002", database_url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("organisations")}
            )
            kept = await connection.scalar(text("SELECT count(*) FROM organisations"))
        assert "admin_tokens" not in tables and "deleted_at" not in columns and kept == 1
    finally:
        await engine.dispose()
