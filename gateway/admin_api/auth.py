"""Who may call the admin API: a bearer admin token, looked up on every request.

API keys are refused here (and admin tokens on ``/v1``); a read-only token may only read.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.api.services import Services
from gateway.auth.admin_tokens import looks_like_admin_token
from gateway.auth.keys import bearer_token, hash_key, looks_like_key
from gateway.db.models import AdminToken, utcnow
from gateway.errors import ApiError, DatabaseUnavailable

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """The admin token a request came with."""

    name: str
    read_only: bool


class AdminUnauthorized(ApiError):
    """No admin token, an unknown or revoked one, or an API key (401)."""

    status_code = 401
    code = "invalid_admin_token"


class AdminForbidden(ApiError):
    """A read-only admin token on a route that changes something (403)."""

    status_code = 403
    type = "permission_error"
    code = "insufficient_permissions"


def services(connection: ASGIConnection) -> Services:
    """This worker's services."""
    found: Services = connection.app.state.services
    return found


def sessions(connection: ASGIConnection) -> async_sessionmaker[AsyncSession]:
    """This worker's database sessions."""
    return services(connection).sessions


async def _lookup(connection: ASGIConnection, token: str) -> AdminIdentity | None:
    found = services(connection)
    token_hash = hash_key(token, found.settings.key_secret.get_secret_value())
    try:
        async with found.sessions() as session, session.begin():
            row = await session.scalar(
                select(AdminToken).where(
                    AdminToken.secret_hash == token_hash, AdminToken.revoked_at.is_(None)
                )
            )
            if row is None:
                return None
            await session.execute(
                update(AdminToken).where(AdminToken.id == row.id).values(last_used_at=utcnow())
            )
            return AdminIdentity(row.name, row.read_only)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(retry_after_s=found.settings.retry_after_s) from exc


async def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Accept a valid admin token: any method for a full one, reads for a read-only one."""
    token = bearer_token(connection.headers.get("authorization"))
    if token is None:
        raise AdminUnauthorized(
            "Missing admin token: send `Authorization: Bearer vgadm_...` "
            "(create one with `visiongate admin-tokens create`)."
        )
    if looks_like_key(token):
        raise AdminUnauthorized(
            "API keys are not valid on admin routes; use an admin token "
            "(`visiongate admin-tokens create`)."
        )
    identity = await _lookup(connection, token) if looks_like_admin_token(token) else None
    if identity is None:
        raise AdminUnauthorized("Invalid admin token.")
    if identity.read_only and connection.scope.get("method", "GET") not in READ_METHODS:
        raise AdminForbidden(
            f"The admin token {identity.name!r} is read-only; this operation changes "
            "something and needs a full admin token."
        )
