"""Usage records say whether their prompt count is the model's or the admission estimate.

A request whose client left after it reached the model but before the model reported the
prompt's size is charged the estimate; ``prompt_estimated`` marks those rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``usage_records.prompt_estimated`` (false for every existing row)."""
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(
            sa.Column("prompt_estimated", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Drop ``usage_records.prompt_estimated``."""
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("prompt_estimated")
