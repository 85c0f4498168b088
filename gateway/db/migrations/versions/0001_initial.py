"""Initial schema: tiers and their limits, organisations, API keys, usage, config revision.

Seeds the tiers free, developer and enterprise (limits for every model, ``*``).

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

# Null means unlimited. Editable afterwards with `visiongate tiers set`.
SEED_TIERS: dict[str, dict[str, int | None]] = {
    "free": {
        "rpm": 30,
        "rpd": 1_000,
        "tpm": 30_000,
        "tpd": 500_000,
        "concurrency": 4,
        "monthly_tokens": None,
    },
    "developer": {
        "rpm": 1_000,
        "rpd": 500_000,
        "tpm": 300_000,
        "tpd": None,
        "concurrency": 64,
        "monthly_tokens": None,
    },
    "enterprise": {
        "rpm": None,
        "rpd": None,
        "tpm": None,
        "tpd": None,
        "concurrency": 512,
        "monthly_tokens": None,
    },
}


def upgrade() -> None:
    """Create the tables and seed the tiers."""
    tiers = op.create_table(
        "tiers",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tiers")),
    )
    tier_limits = op.create_table(
        "tier_limits",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tier_name", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("rpm", sa.BigInteger(), nullable=True),
        sa.Column("rpd", sa.BigInteger(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        sa.Column("tpd", sa.BigInteger(), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("monthly_tokens", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tier_name"],
            ["tiers.name"],
            name=op.f("fk_tier_limits_tier_name_tiers"),
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_limits")),
        sa.UniqueConstraint("tier_name", "model", name="uq_tier_limits_tier_model"),
    )
    op.create_table(
        "organisations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("tier_name", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["tier_name"],
            ["tiers.name"],
            name=op.f("fk_organisations_tier_name_tiers"),
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_index(
        op.f("ix_organisations_tier_name"), "organisations", ["tier_name"], unique=False
    )
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("org_id", BigId, nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_api_keys_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_index(op.f("ix_api_keys_org_id"), "api_keys", ["org_id"], unique=False)
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"], unique=False)
    op.create_table(
        "usage_records",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("org_id", BigId, nullable=False),
        sa.Column("key_id", BigId, nullable=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("video_frames", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("first_token_ms", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_usage_records_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_usage_records_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("request_id", name=op.f("uq_usage_records_request_id")),
    )
    op.create_index(op.f("ix_usage_records_key_id"), "usage_records", ["key_id"], unique=False)
    op.create_index(
        "ix_usage_records_org_model_started",
        "usage_records",
        ["org_id", "model", "started_at"],
        unique=False,
    )
    config_revision = op.create_table(
        "config_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_revision")),
    )

    now = datetime.now(UTC)
    op.bulk_insert(tiers, [{"name": name, "created_at": now} for name in SEED_TIERS])
    op.bulk_insert(
        tier_limits,
        [{"tier_name": name, "model": "*", **limits} for name, limits in SEED_TIERS.items()],
    )
    op.bulk_insert(config_revision, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    """Drop everything this revision made."""
    op.drop_table("config_revision")
    op.drop_index("ix_usage_records_org_model_started", table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_key_id"), table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index(op.f("ix_api_keys_prefix"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_org_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_organisations_tier_name"), table_name="organisations")
    op.drop_table("organisations")
    op.drop_table("tier_limits")
    op.drop_table("tiers")
