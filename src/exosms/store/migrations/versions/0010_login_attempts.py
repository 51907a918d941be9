"""login_attempts: the inbox's lockout, shared by every worker and process

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

A password check is reserved here before it is made (one row per attempt, per client
address), so parallel wrong passwords cannot outrun the count, and `--workers N` or several
machines do not multiply the attempts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_login_attempts_address", "login_attempts", ["address", "at"])


def downgrade() -> None:
    op.drop_index("ix_login_attempts_address", "login_attempts")
    op.drop_table("login_attempts")
