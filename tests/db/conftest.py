"""Database fixtures (SQLite and PostgreSQL, migrated per test) from tests/db/fixtures.py."""

from tests.db.fixtures import database_url, engine, sessions

__all__ = ["database_url", "engine", "sessions"]
