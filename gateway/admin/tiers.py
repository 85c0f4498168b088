"""``visiongate tiers``: list, set."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin import service
from gateway.admin.output import emit
from gateway.admin.runner import run

app = typer.Typer(no_args_is_help=True, help="Tiers and their limits per model (`*`: any model).")

JSON = typer.Option(False, "--json", help="JSON for scripts")
UNLIMITED_WORDS = {"unlimited", "none", "-"}


def _limit(value: str | None, name: str) -> int | None:
    if value is None or value.lower() in UNLIMITED_WORDS:
        return None
    try:
        return int(value.replace("_", "").replace(",", ""))
    except ValueError as exc:
        raise typer.BadParameter(f"--{name}: a number or 'unlimited', not {value!r}") from exc


def _option(name: str) -> Any:
    return typer.Option(None, f"--{name}", help=f"{name} (a number, or 'unlimited')")


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List every tier's limits (null/- is unlimited)."""

    async def op(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {"tier": tier.name, "model": row.model}
            | {name: getattr(row, name) for name in service.LIMIT_FIELDS}
            for tier in await service.list_tiers(session)
            for row in sorted(tier.limits, key=lambda row: row.model)
        ]

    emit(run(op), as_json, "Tiers")


@app.command("set")
def set_(
    tier: str,
    model: str = typer.Option("*", "--model", help="model id, or * for every other model"),
    rpm: str | None = _option("rpm"),
    rpd: str | None = _option("rpd"),
    tpm: str | None = _option("tpm"),
    tpd: str | None = _option("tpd"),
    concurrency: str | None = _option("concurrency"),
    monthly_tokens: str | None = _option("monthly-tokens"),
    as_json: bool = JSON,
) -> None:
    """Set limits of a tier for a model (creating either); options not given are unchanged."""
    given = {
        "rpm": rpm,
        "rpd": rpd,
        "tpm": tpm,
        "tpd": tpd,
        "concurrency": concurrency,
        "monthly_tokens": monthly_tokens,
    }
    changes = {
        name: _limit(value, name.replace("_", "-"))
        for name, value in given.items()
        if value is not None
    }

    async def op(session: AsyncSession) -> list[dict[str, Any]]:
        row = await service.set_tier_limits(session, tier, model, changes)
        return [
            {"tier": row.tier_name, "model": row.model}
            | {name: getattr(row, name) for name in service.LIMIT_FIELDS}
        ]

    emit(run(op), as_json, "Tiers")
