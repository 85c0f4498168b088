"""Alembic, driven from code: ``visiongate db upgrade|downgrade|current`` and ``serve``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from gateway.db.engine import create_engine, database_url
from gateway.settings import Settings

# The Alembic environment ships as package data of gateway.db (pyproject.toml), so an installed
# wheel finds it wherever it lives; Alembic resolves "package:resource" with importlib.resources.
MIGRATIONS = "gateway.db:migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at gateway/db/migrations/ and the given database URL."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    # Alembic's config is an INI file underneath: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head", url: str | None = None) -> None:
    """Migrate the database up to ``revision``; call it outside a running event loop."""
    command.upgrade(alembic_config(url or database_url(settings)), revision)


def downgrade(settings: Settings, revision: str, url: str | None = None) -> None:
    """Migrate the database down to ``revision`` (``base`` drops everything)."""
    command.downgrade(alembic_config(url or database_url(settings)), revision)


def head_revision() -> str | None:
    """The newest revision in gateway/db/migrations/."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(settings: Settings, url: str | None = None) -> str | None:
    """The revision the database is at, or None when it was never migrated."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    engine = create_engine(settings, url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()
