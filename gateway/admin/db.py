"""``visiongate db``: upgrade, downgrade, current (Alembic, driven from code)."""

from __future__ import annotations

import asyncio
import json

import typer
from sqlalchemy.engine import make_url

from gateway.db import migrate
from gateway.db.engine import database_url
from gateway.settings import Settings

app = typer.Typer(no_args_is_help=True, help="The database schema (Alembic migrations).")


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database up (default: to the newest revision)."""
    settings = Settings()
    migrate.upgrade(settings, revision)
    typer.echo(f"database at {asyncio.run(migrate.current_revision(settings))}", err=True)


@app.command()
def downgrade(revision: str = typer.Argument(..., help="a revision, -1, or base")) -> None:
    """Migrate the database down."""
    settings = Settings()
    migrate.downgrade(settings, revision)
    typer.echo(f"database at {asyncio.run(migrate.current_revision(settings))}", err=True)


@app.command()
def current(as_json: bool = typer.Option(False, "--json", help="JSON for scripts")) -> None:
    """Show the database's revision and the newest one available."""
    settings = Settings()
    state = {
        "url": _redacted(database_url(settings)),
        "current": asyncio.run(migrate.current_revision(settings)),
        "head": migrate.head_revision(),
    }
    if as_json:
        print(json.dumps(state))
    else:
        print(f"{state['current'] or 'empty (no revision)'} (head: {state['head']})")


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
