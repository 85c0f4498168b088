"""``visiongate usage``: totals per organisation and model."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.output import emit
from gateway.admin.runner import parse_date, run
from gateway.usage.queries import usage_summary


def usage(
    org: str | None = typer.Option(None, "--org", help="only this organisation"),
    since: str | None = typer.Option(None, "--since", help="from this date (YYYY-MM-DD, UTC)"),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
) -> None:
    """Requests and tokens per organisation and model."""
    start = parse_date(since) if since else None

    async def op(session: AsyncSession) -> list[dict[str, Any]]:
        return [asdict(row) for row in await usage_summary(session, org, start)]

    emit(run(op), as_json, "Usage")
