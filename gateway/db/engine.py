"""The async engine and session factory, from ``VISIONGATE_DATABASE_URL``; SQLite's writer."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.settings import Settings


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded default: a SQLite file under the cache dir."""
    if settings.database_url:
        return settings.database_url
    path = settings.cache_dir / "visiongate.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def is_sqlite(url: str) -> bool:
    """Whether the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """An async engine; on SQLite with WAL and a busy timeout so several processes share a file."""
    url = url or database_url(settings)
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True)
    # No rollback when a connection goes back to the pool: every user ends its transaction
    # (a session or ``engine.begin()`` commits or rolls back), and on SQLite that extra
    # rollback is one more hop to the connection's thread for every transaction.
    engine = create_async_engine(url, pool_reset_on_return=None)
    _sqlite_pragmas(engine.sync_engine, settings.sqlite_busy_timeout_ms)
    return engine


def _sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers in other workers proceed while one writes; busy_timeout makes a
        # writer wait for the lock instead of failing with "database is locked".
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


_writers: weakref.WeakKeyDictionary[AsyncEngine, Engine] = weakref.WeakKeyDictionary()


def sqlite_writer(engine: AsyncEngine, settings: Settings) -> Engine:
    """A synchronous engine on the same SQLite file as ``engine``, for one writer thread.

    Through aiosqlite every statement, the commit and the connection's checkout are each a
    hop to the connection's thread and back; a thread that owns a plain pysqlite connection
    does a whole batch in one hop. The dialect is the same, so what is stored (datetimes
    included) is identical. One per async engine, so that its statements can be observed.
    """
    writer = _writers.get(engine)
    if writer is None:
        writer = create_sync_engine(
            engine.url.set(drivername="sqlite+pysqlite"), pool_reset_on_return=None
        )
        _sqlite_pragmas(writer, settings.sqlite_busy_timeout_ms)
        _writers[engine] = writer
    return writer


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
