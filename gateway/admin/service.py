"""The admin operations behind the CLI and the admin HTTP API: organisations, keys, tiers,
admin tokens. Every change bumps the config revision in its own transaction, which is how
every worker learns of it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.admin_tokens import generate_admin_token
from gateway.auth.keys import generate_key
from gateway.db.models import AdminToken, ApiKey, Organisation, Tier, TierLimit, utcnow
from gateway.db.revision import bump_revision

LIMIT_FIELDS = ("rpm", "rpd", "tpm", "tpd", "concurrency", "monthly_tokens")
# Names travel in URLs (``/admin/v1/organizations/{name}``) and CLI arguments.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class AdminError(Exception):
    """A refused admin operation, with a message for the operator (HTTP 400)."""

    status_code = 400

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class NotFound(AdminError):
    """What the operation names does not exist (HTTP 404)."""

    status_code = 404


class Conflict(AdminError):
    """The operation contradicts what exists (HTTP 409)."""

    status_code = 409


@dataclass(frozen=True, slots=True)
class Page:
    """Which slice of a list: at most ``limit`` items after the one with id ``after``."""

    limit: int
    after: int | str | None = None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: its row, and the secret that is shown this once."""

    key: ApiKey
    organisation: str
    secret: str


@dataclass(frozen=True, slots=True)
class CreatedAdminToken:
    """A new admin token: its row, and the secret that is shown this once."""

    token: AdminToken
    secret: str


def _check_name(name: str, what: str, longest: int) -> None:
    if not NAME.fullmatch(name) or len(name) > longest:
        raise AdminError(
            f"{what} name {name!r} must be 1 to {longest} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            code="invalid_name",
            param="name",
        )


async def tier(session: AsyncSession, name: str) -> Tier:
    """The tier called ``name``."""
    found = await session.get(Tier, name)
    if found is None:
        known = ", ".join((await session.scalars(select(Tier.name).order_by(Tier.name))).all())
        raise NotFound(f"no tier {name!r} (tiers: {known})", code="tier_not_found", param="tier")
    return found


async def organisation(
    session: AsyncSession, name: str, *, include_deleted: bool = False
) -> Organisation:
    """The organisation called ``name``; a deleted one only with ``include_deleted``."""
    org = await session.scalar(select(Organisation).where(Organisation.name == name))
    if org is None or (org.deleted_at is not None and not include_deleted):
        raise NotFound(
            f"no organisation {name!r}", code="organization_not_found", param="organization"
        )
    return org


async def create_organisation(session: AsyncSession, name: str, tier_name: str) -> Organisation:
    """Create an organisation on a tier."""
    _check_name(name, "organisation", 128)
    await tier(session, tier_name)
    existing = await session.scalar(select(Organisation).where(Organisation.name == name))
    if existing is not None:
        deleted = " (a deleted organisation's name is not reused)" if existing.deleted_at else ""
        raise Conflict(
            f"organisation {name!r} exists{deleted}", code="organization_exists", param="name"
        )
    org = Organisation(name=name, tier_name=tier_name)
    session.add(org)
    await bump_revision(session)
    await session.flush()
    return org


def _after(query: Any, column: Any, page: Page | None) -> Any:
    """``query`` ordered by ``column``; with a page, the rows after its cursor and one more
    than its limit (so the caller sees whether more follow)."""
    if page is None:
        return query.order_by(column)
    if page.after is not None:
        query = query.where(column > page.after)
    return query.order_by(column).limit(page.limit + 1)


async def list_organisations(
    session: AsyncSession, page: Page | None = None
) -> list[tuple[Organisation, int]]:
    """Organisations (not deleted) by id, each with its number of active keys.

    With ``page``: up to ``page.limit + 1`` of them, so the caller can tell if there are more.
    """
    active = (
        select(ApiKey.org_id, func.count(ApiKey.id).label("key_count"))
        .where(_usable(utcnow()))
        .group_by(ApiKey.org_id)
        .subquery()
    )
    query = (
        select(Organisation, func.coalesce(active.c.key_count, 0))
        .outerjoin(active, active.c.org_id == Organisation.id)
        .where(Organisation.deleted_at.is_(None))
    )
    rows = await session.execute(_after(query, Organisation.id, page))
    return [(org, int(keys)) for org, keys in rows]


def _usable(now: datetime) -> ColumnElement[bool]:
    """Keys neither revoked nor expired (``key_state`` ``active``)."""
    return and_(
        ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)
    )


async def active_key_count(session: AsyncSession, org: Organisation) -> int:
    """How many of the organisation's keys are neither revoked nor expired."""
    count = await session.scalar(
        select(func.count(ApiKey.id)).where(ApiKey.org_id == org.id, _usable(utcnow()))
    )
    return int(count or 0)


async def set_organisation_tier(session: AsyncSession, name: str, tier_name: str) -> Organisation:
    """Move an organisation to another tier."""
    await tier(session, tier_name)
    org = await organisation(session, name)
    org.tier_name = tier_name
    await bump_revision(session)
    return org


async def delete_organisation(
    session: AsyncSession, name: str, *, force: bool = False
) -> tuple[Organisation, int]:
    """Delete an organisation; returns it and how many keys this revoked.

    Refused while it has usable (unrevoked, unexpired) keys, unless ``force``, which revokes
    them. The row stays, marked deleted, so its usage stays attributable for billing and
    its name is not reused; it disappears from lists and lookups.
    """
    org = await organisation(session, name)
    now = utcnow()
    keys = (
        await session.scalars(
            select(ApiKey).where(ApiKey.org_id == org.id, ApiKey.revoked_at.is_(None))
        )
    ).all()
    usable = [key for key in keys if key_state(key, now) == "active"]
    if usable and not force:
        raise Conflict(
            f"organisation {name!r} has {len(usable)} active key(s): revoke them first, "
            "or delete with force to revoke them too",
            code="organization_has_active_keys",
            param="force",
        )
    for key in keys:
        key.revoked_at = now
    org.deleted_at = now
    await bump_revision(session)
    return org, len(keys)


async def create_key(
    session: AsyncSession,
    server_secret: str,
    org_name: str,
    label: str | None = None,
    expires_in: timedelta | None = None,
) -> CreatedKey:
    """Create a key for an organisation; the secret is returned once and never stored."""
    org = await organisation(session, org_name)
    new = generate_key(server_secret)
    key = ApiKey(
        org_id=org.id,
        label=label,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
        created_at=utcnow(),
        expires_at=utcnow() + expires_in if expires_in is not None else None,
    )
    session.add(key)
    # A new key may have been tried (and negatively cached) before it existed.
    await bump_revision(session)
    await session.flush()
    return CreatedKey(key, org.name, new.secret)


async def list_keys(
    session: AsyncSession, org_name: str | None = None, page: Page | None = None
) -> list[tuple[ApiKey, str]]:
    """Keys (with their organisation's name) by id, revoked and expired ones included."""
    query = select(ApiKey, Organisation.name).join(Organisation, ApiKey.org_id == Organisation.id)
    if org_name is not None:
        org = await organisation(session, org_name)
        query = query.where(ApiKey.org_id == org.id)
    rows = await session.execute(_after(query, ApiKey.id, page))
    return [(key, name) for key, name in rows]


async def key_by_id(session: AsyncSession, key_id: int) -> tuple[ApiKey, str]:
    """One key and its organisation's name."""
    row = (
        await session.execute(
            select(ApiKey, Organisation.name)
            .join(Organisation, ApiKey.org_id == Organisation.id)
            .where(ApiKey.id == key_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no key with id {key_id}", code="key_not_found", param="key_id")
    return row[0], row[1]


async def find_key(session: AsyncSession, id_or_prefix: str) -> ApiKey:
    """One key by numeric id or by (a unique start of) its display prefix."""
    if id_or_prefix.isdigit():
        return (await key_by_id(session, int(id_or_prefix)))[0]
    matches = (
        await session.scalars(select(ApiKey).where(ApiKey.prefix.startswith(id_or_prefix)))
    ).all()
    if not matches:
        raise NotFound(f"no key with prefix {id_or_prefix!r}", code="key_not_found")
    if len(matches) > 1:
        ids = ", ".join(str(key.id) for key in matches)
        raise AdminError(f"prefix {id_or_prefix!r} matches several keys (ids {ids}): use the id")
    return matches[0]


async def revoke_key(session: AsyncSession, id_or_prefix: str) -> ApiKey:
    """Revoke a key; every worker refuses it within a second."""
    key = await find_key(session, id_or_prefix)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await bump_revision(session)
    return key


async def rotate_key(
    session: AsyncSession,
    server_secret: str,
    id_or_prefix: str,
    grace: timedelta | None = None,
    expires_in: timedelta | None = None,
) -> tuple[ApiKey, CreatedKey]:
    """Replace a key with a new one for the same organisation and label.

    The old key is revoked at once, or with ``grace`` stays valid that much longer.
    """
    old = await find_key(session, id_or_prefix)
    if old.revoked_at is not None:
        raise Conflict(f"key {old.id} is revoked", code="key_revoked")
    org = await session.get(Organisation, old.org_id)
    if org is None:
        raise NotFound(f"key {old.id} has no organisation")
    now = utcnow()
    if grace:
        old.expires_at = min(old.expires_at, now + grace) if old.expires_at else now + grace
    else:
        old.revoked_at = now
    return old, await create_key(session, server_secret, org.name, old.label, expires_in)


async def list_tiers(session: AsyncSession, page: Page | None = None) -> list[Tier]:
    """Tiers by name, each with its limits."""
    return list((await session.scalars(_after(select(Tier), Tier.name, page))).all())


async def set_tier_limits(
    session: AsyncSession, tier_name: str, model: str, changes: dict[str, int | None]
) -> TierLimit:
    """Set some of a tier's limits for a model (None: unlimited); creates the tier or row."""
    unknown = set(changes) - set(LIMIT_FIELDS)
    if unknown:
        raise AdminError(f"unknown limits: {', '.join(sorted(unknown))}", param=min(unknown))
    for name, value in changes.items():
        if value is not None and value < 1:
            raise AdminError(
                f"{name} must be at least 1, or 'unlimited'", code="invalid_limit", param=name
            )
    if not model:
        raise AdminError("model must not be empty (`*` is every other model)", param="model")
    if await session.get(Tier, tier_name) is None:
        _check_name(tier_name, "tier", 64)
        session.add(Tier(name=tier_name))
        await session.flush()
    row = await session.scalar(
        select(TierLimit).where(TierLimit.tier_name == tier_name, TierLimit.model == model)
    )
    if row is None:
        row = TierLimit(tier_name=tier_name, model=model)
        session.add(row)
    for name, value in changes.items():
        setattr(row, name, value)
    await bump_revision(session)
    await session.flush()
    return row


def key_state(key: ApiKey, now: datetime) -> str:
    """``active``, ``revoked`` or ``expired``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


async def create_admin_token(
    session: AsyncSession, server_secret: str, name: str, *, read_only: bool = False
) -> CreatedAdminToken:
    """Create an admin token; the secret is returned once and never stored.

    Admin tokens are looked up on every admin request, so no revision bump is needed.
    """
    if not name.strip() or len(name) > 128:
        raise AdminError("an admin token's name must be 1 to 128 characters", param="name")
    new = generate_admin_token(server_secret)
    token = AdminToken(
        name=name,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
        read_only=read_only,
        created_at=utcnow(),
    )
    session.add(token)
    await session.flush()
    return CreatedAdminToken(token, new.secret)


async def list_admin_tokens(session: AsyncSession) -> list[AdminToken]:
    """Every admin token, revoked ones included, by id."""
    return list((await session.scalars(select(AdminToken).order_by(AdminToken.id))).all())


async def revoke_admin_token(session: AsyncSession, id_or_prefix: str) -> AdminToken:
    """Revoke an admin token by id or (a unique start of) its display prefix; effective at once."""
    if id_or_prefix.isdigit():
        matches = [await session.get(AdminToken, int(id_or_prefix))]
    else:
        matches = list(
            (
                await session.scalars(
                    select(AdminToken).where(AdminToken.prefix.startswith(id_or_prefix))
                )
            ).all()
        )
    found = [token for token in matches if token is not None]
    if not found:
        raise NotFound(f"no admin token {id_or_prefix!r}", code="admin_token_not_found")
    if len(found) > 1:
        ids = ", ".join(str(token.id) for token in found)
        raise AdminError(f"prefix {id_or_prefix!r} matches several tokens (ids {ids}): use the id")
    token = found[0]
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token
