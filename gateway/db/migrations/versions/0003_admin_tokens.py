"""Admin tokens for the admin HTTP API; organisations can be deleted and keep their usage.

A deleted organisation keeps its row (``deleted_at`` set) so its usage stays attributable
for billing, and its name is not given to anyone else.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``admin_tokens``; add ``organisations.deleted_at``."""
    op.create_table(
        "admin_tokens",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_admin_tokens_secret_hash")),
    )
    op.create_index(op.f("ix_admin_tokens_prefix"), "admin_tokens", ["prefix"], unique=False)
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("deleted_at", Timestamp, nullable=True))


def downgrade() -> None:
    """Drop ``organisations.deleted_at`` and ``admin_tokens``."""
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("deleted_at")
    op.drop_index(op.f("ix_admin_tokens_prefix"), table_name="admin_tokens")
    op.drop_table("admin_tokens")
