"""``visiongate keys``: create, list, revoke, rotate."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin import service
from gateway.admin.output import emit, emit_one
from gateway.admin.runner import parse_duration, run
from gateway.db.models import ApiKey, Organisation, utcnow
from gateway.settings import Settings

app = typer.Typer(no_args_is_help=True, help="API keys: shown once at creation, stored hashed.")

JSON = typer.Option(False, "--json", help="JSON for scripts")


def _describe(key: ApiKey, organisation: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "organisation": organisation,
        "label": key.label,
        "state": service.key_state(key, utcnow()),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


def _show_created(created: service.CreatedKey, as_json: bool) -> None:
    row = _describe(created.key, created.organisation)
    if as_json:
        emit_one(row | {"secret": created.secret}, as_json=True)
        return
    emit_one(row, as_json=False)
    typer.secho("The key below is shown once; store it now.", err=True, fg=typer.colors.YELLOW)
    print(created.secret)  # alone on the last line, for `| tail -1`


def _server_secret() -> str:
    return Settings().key_secret.get_secret_value()


@app.command()
def create(
    org: str = typer.Option(..., "--org", help="organisation name"),
    name: str | None = typer.Option(None, "--name", help="a label for the key"),
    expires_in: str | None = typer.Option(None, "--expires-in", help="e.g. 30d, 12h, 1w"),
    as_json: bool = JSON,
) -> None:
    """Create a key; prints the secret once, alone on the last line."""
    lifetime = parse_duration(expires_in) if expires_in else None
    secret = _server_secret()

    async def op(session: AsyncSession) -> service.CreatedKey:
        return await service.create_key(session, secret, org, name, lifetime)

    _show_created(run(op), as_json)


@app.command("list")
def list_(
    org: str | None = typer.Option(None, "--org", help="only this organisation's keys"),
    as_json: bool = JSON,
) -> None:
    """List keys (prefixes only: secrets are never stored)."""

    async def op(session: AsyncSession) -> list[dict[str, Any]]:
        rows = await service.list_keys(session, org)
        return [_describe(key, name) for key, name in reversed(rows)]  # newest first

    emit(run(op), as_json, "Keys")


@app.command()
def revoke(
    key: str = typer.Argument(..., metavar="KEY_ID_OR_PREFIX"), as_json: bool = JSON
) -> None:
    """Revoke a key; every worker refuses it within a second."""

    async def op(session: AsyncSession) -> dict[str, Any]:
        revoked = await service.revoke_key(session, key)
        org = await session.get(Organisation, revoked.org_id)
        return _describe(revoked, org.name if org else "-")

    emit_one(run(op), as_json)


@app.command()
def rotate(
    key: str = typer.Argument(..., metavar="KEY_ID_OR_PREFIX"),
    grace: str | None = typer.Option(
        None, "--grace", help="keep the old key valid this long (e.g. 1h); default: revoke now"
    ),
    expires_in: str | None = typer.Option(None, "--expires-in", help="lifetime of the new key"),
    as_json: bool = JSON,
) -> None:
    """Replace a key with a new one; prints the new secret once, alone on the last line."""
    grace_period = parse_duration(grace) if grace else None
    lifetime = parse_duration(expires_in) if expires_in else None
    secret = _server_secret()

    async def op(session: AsyncSession) -> service.CreatedKey:
        _, created = await service.rotate_key(session, secret, key, grace_period, lifetime)
        return created

    _show_created(run(op), as_json)
