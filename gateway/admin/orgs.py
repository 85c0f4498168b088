"""``visiongate orgs``: create, list, set-tier, delete."""

from __future__ import annotations

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin import service
from gateway.admin.output import emit, emit_one
from gateway.admin.runner import run

app = typer.Typer(no_args_is_help=True, help="Organisations: who keys belong to and limits count.")

JSON = typer.Option(False, "--json", help="JSON for scripts")


@app.command()
def create(
    name: str,
    tier: str = typer.Option("free", "--tier", help="tier name (see `visiongate tiers list`)"),
    as_json: bool = JSON,
) -> None:
    """Create an organisation on a tier."""

    async def op(session: AsyncSession) -> dict[str, object]:
        org = await service.create_organisation(session, name, tier)
        return {"id": org.id, "name": org.name, "tier": org.tier_name, "created_at": org.created_at}

    emit_one(run(op), as_json)


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List organisations."""

    async def op(session: AsyncSession) -> list[dict[str, object]]:
        return [
            {
                "id": org.id,
                "name": org.name,
                "tier": org.tier_name,
                "active_keys": keys,
                "created_at": org.created_at,
            }
            for org, keys in await service.list_organisations(session)
        ]

    emit(run(op), as_json, "Organisations")


@app.command("set-tier")
def set_tier(name: str, tier: str, as_json: bool = JSON) -> None:
    """Move an organisation to another tier (takes effect within a second)."""

    async def op(session: AsyncSession) -> dict[str, object]:
        org = await service.set_organisation_tier(session, name, tier)
        return {"id": org.id, "name": org.name, "tier": org.tier_name}

    emit_one(run(op), as_json)


@app.command()
def delete(
    name: str,
    force: bool = typer.Option(False, "--force", help="also revoke its active keys"),
    as_json: bool = JSON,
) -> None:
    """Delete an organisation (refused while it has active keys, unless --force).

    Its usage is kept for billing and its name is not reused.
    """

    async def op(session: AsyncSession) -> dict[str, object]:
        org, revoked = await service.delete_organisation(session, name, force=force)
        return {
            "id": org.id,
            "name": org.name,
            "deleted_at": org.deleted_at,
            "revoked_keys": revoked,
        }

    emit_one(run(op), as_json)
