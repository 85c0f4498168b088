"""``visiongate admin-tokens``: create, list, revoke (tokens for the admin HTTP API)."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin import service
from gateway.admin.output import emit, emit_one
from gateway.admin.runner import run
from gateway.db.models import AdminToken
from gateway.settings import Settings

app = typer.Typer(
    no_args_is_help=True, help="Admin tokens for /admin/v1: shown once at creation, stored hashed."
)

JSON = typer.Option(False, "--json", help="JSON for scripts")


def _describe(token: AdminToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "prefix": token.prefix,
        "name": token.name,
        "read_only": token.read_only,
        "state": "revoked" if token.revoked_at else "active",
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
    }


@app.command()
def create(
    name: str = typer.Option(..., "--name", help="who or what the token is for"),
    read_only: bool = typer.Option(False, "--read-only", help="may only read (GET)"),
    as_json: bool = JSON,
) -> None:
    """Create an admin token; prints the secret once, alone on the last line."""
    secret = Settings().key_secret.get_secret_value()

    async def op(session: AsyncSession) -> service.CreatedAdminToken:
        return await service.create_admin_token(session, secret, name, read_only=read_only)

    created = run(op)
    row = _describe(created.token)
    if as_json:
        emit_one(row | {"secret": created.secret}, as_json=True)
        return
    emit_one(row, as_json=False)
    typer.secho("The token below is shown once; store it now.", err=True, fg=typer.colors.YELLOW)
    print(created.secret)  # alone on the last line, for `| tail -1`


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List admin tokens (prefixes only: secrets are never stored)."""

    async def op(session: AsyncSession) -> list[dict[str, Any]]:
        return [_describe(token) for token in await service.list_admin_tokens(session)]

    emit(run(op), as_json, "Admin tokens")


@app.command()
def revoke(
    token: str = typer.Argument(..., metavar="TOKEN_ID_OR_PREFIX"), as_json: bool = JSON
) -> None:
    """Revoke an admin token; refused on the next request."""

    async def op(session: AsyncSession) -> dict[str, Any]:
        return _describe(await service.revoke_admin_token(session, token))

    emit_one(run(op), as_json)
