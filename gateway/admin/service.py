"""The admin operations behind the CLI: organisations, keys, tiers. Every change bumps the
config revision in its own transaction, which is how every worker learns of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.keys import generate_key
from gateway.db.models import ApiKey, Organisation, Tier, TierLimit, utcnow
from gateway.db.revision import bump_revision

LIMIT_FIELDS = ("rpm", "rpd", "tpm", "tpd", "concurrency", "monthly_tokens")


class AdminError(Exception):
    """A refused admin operation, with a message for the operator."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: its row, and the secret that is shown this once."""

    key: ApiKey
    organisation: str
    secret: str


async def _tier(session: AsyncSession, name: str) -> Tier:
    tier = await session.get(Tier, name)
    if tier is None:
        known = ", ".join((await session.scalars(select(Tier.name).order_by(Tier.name))).all())
        raise AdminError(f"no tier {name!r} (tiers: {known})")
    return tier


async def organisation(session: AsyncSession, name: str) -> Organisation:
    """The organisation called ``name``."""
    org = await session.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        raise AdminError(f"no organisation {name!r}")
    return org


async def create_organisation(session: AsyncSession, name: str, tier: str) -> Organisation:
    """Create an organisation on a tier."""
    await _tier(session, tier)
    if await session.scalar(select(Organisation.id).where(Organisation.name == name)):
        raise AdminError(f"organisation {name!r} exists")
    org = Organisation(name=name, tier_name=tier)
    session.add(org)
    await bump_revision(session)
    await session.flush()
    return org


async def list_organisations(session: AsyncSession) -> list[tuple[Organisation, int]]:
    """Every organisation with its number of active keys."""
    active = (
        select(ApiKey.org_id, func.count(ApiKey.id).label("key_count"))
        .where(ApiKey.revoked_at.is_(None))
        .group_by(ApiKey.org_id)
        .subquery()
    )
    rows = await session.execute(
        select(Organisation, func.coalesce(active.c.key_count, 0))
        .outerjoin(active, active.c.org_id == Organisation.id)
        .order_by(Organisation.name)
    )
    return [(org, int(keys)) for org, keys in rows]


async def set_organisation_tier(session: AsyncSession, name: str, tier: str) -> Organisation:
    """Move an organisation to another tier."""
    await _tier(session, tier)
    org = await organisation(session, name)
    org.tier_name = tier
    await bump_revision(session)
    return org


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


async def list_keys(session: AsyncSession, org_name: str | None = None) -> list[tuple[ApiKey, str]]:
    """Keys (with their organisation's name), newest first."""
    query = select(ApiKey, Organisation.name).join(Organisation, ApiKey.org_id == Organisation.id)
    if org_name is not None:
        await organisation(session, org_name)
        query = query.where(Organisation.name == org_name)
    rows = await session.execute(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
    return [(key, name) for key, name in rows]


async def find_key(session: AsyncSession, id_or_prefix: str) -> ApiKey:
    """One key by numeric id or by (a unique start of) its display prefix."""
    if id_or_prefix.isdigit():
        key = await session.get(ApiKey, int(id_or_prefix))
        if key is None:
            raise AdminError(f"no key with id {id_or_prefix}")
        return key
    matches = (
        await session.scalars(select(ApiKey).where(ApiKey.prefix.startswith(id_or_prefix)))
    ).all()
    if not matches:
        raise AdminError(f"no key with prefix {id_or_prefix!r}")
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
        raise AdminError(f"key {old.id} is revoked")
    org = await session.get(Organisation, old.org_id)
    if org is None:
        raise AdminError(f"key {old.id} has no organisation")
    now = utcnow()
    if grace:
        old.expires_at = min(old.expires_at, now + grace) if old.expires_at else now + grace
    else:
        old.revoked_at = now
    return old, await create_key(session, server_secret, org.name, old.label, expires_in)


async def list_tiers(session: AsyncSession) -> list[Tier]:
    """Every tier with its limits."""
    return list((await session.scalars(select(Tier).order_by(Tier.name))).all())


async def set_tier_limits(
    session: AsyncSession, tier: str, model: str, changes: dict[str, int | None]
) -> TierLimit:
    """Set some of a tier's limits for a model (None: unlimited); creates the tier or row."""
    unknown = set(changes) - set(LIMIT_FIELDS)
    if unknown:
        raise AdminError(f"unknown limits: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        if value is not None and value < 1:
            raise AdminError(f"{name} must be at least 1, or 'unlimited'")
    if await session.get(Tier, tier) is None:
        session.add(Tier(name=tier))
        await session.flush()
    row = await session.scalar(
        select(TierLimit).where(TierLimit.tier_name == tier, TierLimit.model == model)
    )
    if row is None:
        row = TierLimit(tier_name=tier, model=model)
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
