"""Alembic environment: async engines, the URL from the config that gateway.db.migrate builds."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from gateway.db.engine import create_engine, is_sqlite
from gateway.db.models import Base
from gateway.settings import Settings

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    """Run the migrations on one connection; batch mode lets SQLite alter tables."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online(url: str) -> None:
    """Connect with the async driver and run the migrations in a sync shim."""
    engine = create_engine(Settings(), url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


def run_offline(url: str) -> None:
    """Emit SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


url = context.config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("sqlalchemy.url is not set: run migrations through `visiongate db`")
if context.is_offline_mode():
    run_offline(url)
else:
    asyncio.run(run_online(url))
