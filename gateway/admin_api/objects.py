"""The admin API's JSON objects (request bodies and responses) and their making from rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from gateway.admin import service
from gateway.db import models
from gateway.db.models import utcnow

Limit = Annotated[int, Meta(ge=1, description="a positive integer; null is unlimited")]
Seconds = Annotated[int, Meta(ge=1, description="seconds")]
NonNegativeSeconds = Annotated[int, Meta(ge=0, description="seconds")]


def unix(value: datetime | None) -> int | None:
    """A timestamp as Unix seconds, as OpenAI's objects carry them."""
    return None if value is None else int(value.timestamp())


class Organization(msgspec.Struct):
    """An organisation: owns keys, has a tier, is what limits and usage count against."""

    id: int
    name: str
    tier: str
    active_keys: int
    created_at: int
    object: str = "organization"


class OrganizationList(msgspec.Struct):
    """A page of organisations, by id."""

    data: list[Organization]
    first_id: int | None
    last_id: int | None
    has_more: bool
    object: str = "list"


class OrganizationDeleted(msgspec.Struct):
    """What deleting an organisation did."""

    id: int
    name: str
    revoked_keys: int
    deleted: bool = True
    object: str = "organization.deleted"


class CreateOrganization(msgspec.Struct, forbid_unknown_fields=True):
    """A new organisation."""

    name: str
    tier: str = "free"


class UpdateOrganization(msgspec.Struct, forbid_unknown_fields=True):
    """A change of tier (takes effect on every worker within a second)."""

    tier: str


class ApiKey(msgspec.Struct, kw_only=True):
    """An API key: its prefix only, never its secret."""

    id: int
    prefix: str
    organization: str
    name: str | None
    state: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None
    object: str = "api_key"


class NewApiKey(ApiKey, kw_only=True):
    """A key just created: the one response that carries its secret."""

    secret: str


class ApiKeyList(msgspec.Struct):
    """A page of keys, by id (revoked and expired ones included, with their ``state``)."""

    data: list[ApiKey]
    first_id: int | None
    last_id: int | None
    has_more: bool
    object: str = "list"


class KeyRotation(msgspec.Struct):
    """A rotation: the new key (with its secret) and the old one as it is now."""

    key: NewApiKey
    previous: ApiKey
    object: str = "api_key.rotation"


class CreateKey(msgspec.Struct, forbid_unknown_fields=True):
    """A new key for an organisation."""

    name: str | None = None
    expires_in: Seconds | None = None


class RotateKey(msgspec.Struct, forbid_unknown_fields=True):
    """A rotation: without ``grace_period`` the old key is revoked at once."""

    grace_period: NonNegativeSeconds | None = None
    expires_in: Seconds | None = None


class TierLimits(msgspec.Struct):
    """A tier's limits for one model (``*``: every model without its own row); null: none."""

    model: str
    rpm: int | None
    rpd: int | None
    tpm: int | None
    tpd: int | None
    concurrency: int | None
    monthly_tokens: int | None


class Tier(msgspec.Struct):
    """A tier and its limits per model."""

    id: str
    limits: list[TierLimits]
    object: str = "tier"


class TierList(msgspec.Struct):
    """A page of tiers, by name."""

    data: list[Tier]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: str = "list"


class SetLimits(msgspec.Struct, forbid_unknown_fields=True):
    """Limits to set for one model of a tier; a field left out is unchanged, null unlimits it."""

    model: str = "*"
    rpm: Limit | UnsetType | None = UNSET
    rpd: Limit | UnsetType | None = UNSET
    tpm: Limit | UnsetType | None = UNSET
    tpd: Limit | UnsetType | None = UNSET
    concurrency: Limit | UnsetType | None = UNSET
    monthly_tokens: Limit | UnsetType | None = UNSET

    def changes(self) -> dict[str, int | None]:
        """The limits given, by name."""
        given = {name: getattr(self, name) for name in service.LIMIT_FIELDS}
        return {name: value for name, value in given.items() if value is not UNSET}


def organization(org: models.Organisation, active_keys: int) -> Organization:
    """The API object for an organisation row."""
    return Organization(org.id, org.name, org.tier_name, active_keys, unix(org.created_at) or 0)


def api_key(key: models.ApiKey, organisation: str) -> ApiKey:
    """The API object for a key row."""
    return ApiKey(
        id=key.id,
        prefix=key.prefix,
        organization=organisation,
        name=key.label,
        state=service.key_state(key, utcnow()),
        created_at=unix(key.created_at) or 0,
        expires_at=unix(key.expires_at),
        revoked_at=unix(key.revoked_at),
        last_used_at=unix(key.last_used_at),
    )


def new_api_key(created: service.CreatedKey) -> NewApiKey:
    """The API object for a key just made, with its secret."""
    fields = msgspec.structs.asdict(api_key(created.key, created.organisation))
    return NewApiKey(**fields, secret=created.secret)


def tier_limits(row: models.TierLimit) -> TierLimits:
    """The API object for a tier's limits for one model."""
    return TierLimits(
        row.model, row.rpm, row.rpd, row.tpm, row.tpd, row.concurrency, row.monthly_tokens
    )


def tier(row: models.Tier) -> Tier:
    """The API object for a tier and its limits."""
    return Tier(row.name, [tier_limits(limit) for limit in sorted(row.limits, key=_model)])


def _model(row: models.TierLimit) -> str:
    return row.model
