"""users: named inbox users with a role; sessions know their user; conversations can be
assigned and closed

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01

``users`` holds everyone but the first admin (``[inbox] password_hash``). A session's
``user_name`` is ``NULL`` for that first admin (sessions made before this migration
stay valid). ``conversations.assigned_to`` names the person a conversation is given to;
``closed_upto`` is the newest message id when it was closed: a newer message opens it again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.add_column("web_sessions", sa.Column("user_name", sa.String(32)))
    op.add_column("conversations", sa.Column("assigned_to", sa.String(32)))
    op.add_column(
        "conversations",
        sa.Column("closed_upto", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
    )


def downgrade() -> None:
    op.drop_column("conversations", "closed_upto")
    op.drop_column("conversations", "assigned_to")
    op.drop_column("web_sessions", "user_name")
    op.drop_table("users")
