"""guards: opt-outs, and why a reply was suppressed

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "optouts",
        sa.Column("sender", sa.String(256), primary_key=True),
        sa.Column("recipient", sa.String(256), primary_key=True),  # "*": every number
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),  # sms | cli
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("guard", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("guard")
    op.drop_table("optouts")
