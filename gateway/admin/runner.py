"""Run one admin operation: a session in a transaction, errors as a message and exit 1."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import typer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.service import AdminError
from gateway.db import migrate
from gateway.db.engine import create_engine, session_factory
from gateway.settings import Settings

T = TypeVar("T")

DURATION_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
DURATION = re.compile(r"(\d+)([wdhms])")


def fail(message: str) -> typer.Exit:
    """Print an error for the operator; raise the returned Exit."""
    typer.secho(f"visiongate: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def run(operation: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``operation`` in one committed transaction against VISIONGATE_DATABASE_URL.

    A database without the schema, or with an older one, is said so in one line.
    """
    settings = Settings()

    async def main() -> T:
        engine = create_engine(settings)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await operation(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except AdminError as exc:
        raise fail(str(exc)) from exc
    except DBAPIError as exc:
        problem = schema_problem(settings)
        if problem is None:
            raise
        raise fail(problem) from exc


def schema_problem(settings: Settings) -> str | None:
    """What is wrong with the database's schema, or None when it is at the newest revision."""
    try:
        current = asyncio.run(migrate.current_revision(settings))
    except DBAPIError:
        return None  # not a schema problem: the database itself cannot be read
    head = migrate.head_revision()
    if current is None:
        return "the database has no schema: run `visiongate db upgrade`"
    if current != head:
        return (
            f"the database schema is at revision {current}, this visiongate needs {head}: "
            "run `visiongate db upgrade`"
        )
    return None


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``1w2d``, ``90m``, ``45s`` as a timedelta."""
    parts = DURATION.findall(text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise typer.BadParameter(f"{text!r}: use e.g. 30d, 12h, 1w2d, 90m")
    return timedelta(seconds=sum(int(n) * DURATION_UNITS[u] for n, u in parts))


def parse_date(text: str) -> datetime:
    """An ISO date or datetime (UTC when no zone is given)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: use YYYY-MM-DD or an ISO datetime") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)
