"""The SQL schema as SQLAlchemy 2 typed models; gateway/db/migrations/ creates it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

# Named constraints, so migrations can alter them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only turns INTEGER PRIMARY KEY into an auto-incrementing rowid, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp; SQLite hands back naive ones, so they are re-tagged."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The declarative base: one metadata for every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tier(Base):
    """A named bundle of limits (free, developer, enterprise, …)."""

    __tablename__ = "tiers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    limits: Mapped[list[TierLimit]] = relationship(
        back_populates="tier", cascade="all, delete-orphan", lazy="selectin"
    )


class TierLimit(Base):
    """A tier's limits for one model, or for every other model when ``model`` is ``*``.

    Null means unlimited.
    """

    __tablename__ = "tier_limits"
    __table_args__ = (UniqueConstraint("tier_name", "model", name="uq_tier_limits_tier_model"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tier_name: Mapped[str] = mapped_column(
        ForeignKey("tiers.name", ondelete="CASCADE", onupdate="CASCADE")
    )
    model: Mapped[str] = mapped_column(String(255))
    rpm: Mapped[int | None] = mapped_column(BigInteger)
    rpd: Mapped[int | None] = mapped_column(BigInteger)
    tpm: Mapped[int | None] = mapped_column(BigInteger)
    tpd: Mapped[int | None] = mapped_column(BigInteger)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    monthly_tokens: Mapped[int | None] = mapped_column(BigInteger)

    tier: Mapped[Tier] = relationship(back_populates="limits")


class Organisation(Base):
    """A customer: owns keys, has a tier, is what limits and usage are counted against."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    tier_name: Mapped[str] = mapped_column(ForeignKey("tiers.name", onupdate="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set by deletion: the row stays so its usage stays attributable, and its name taken.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An API key; only its hash is stored, the secret is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AdminToken(Base):
    """A token for the admin HTTP API; only its hash is stored, the secret is shown once."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UsageRecord(Base):
    """One per request, with its final token counts."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_org_model_started", "org_id", "model", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    model: Mapped[str] = mapped_column(String(255))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    # True: the client left before the model reported the prompt's size; it is the estimate.
    prompt_estimated: Mapped[bool] = mapped_column(Boolean, server_default=false())
    completion_tokens: Mapped[int] = mapped_column(Integer)
    images: Mapped[int] = mapped_column(Integer)
    video_frames: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float] = mapped_column(Float)


class ConfigRevision(Base):
    """One row whose counter every admin change bumps; workers poll it to drop their caches."""

    __tablename__ = "config_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
