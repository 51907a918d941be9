"""messages: every incoming SMS, its claim and its answer

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sms_sid", sa.String(128), nullable=False, unique=True),
        sa.Column("sender", sa.String(256), nullable=False),
        sa.Column("sender_raw", sa.String(256), nullable=False),
        sa.Column("recipient", sa.String(256), nullable=False),
        sa.Column("recipient_raw", sa.String(256), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("date_raw", sa.String(256), nullable=False),
        sa.Column("exotel_date", sa.Float),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claim_owner", sa.String(64)),
        sa.Column("claim_expires", sa.Float),
        sa.Column("reply", sa.Text),
        sa.Column("rule", sa.String(200)),
        sa.Column("outcome", sa.String(32)),
        sa.Column("handler_ms", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("answered_at", sa.Float),
        sa.Column("fetch_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_fetch_at", sa.Float),
    )
    op.create_index("ix_messages_received_at", "messages", ["received_at"])
    op.create_index("ix_messages_sender", "messages", ["sender", "received_at"])


def downgrade() -> None:
    op.drop_table("messages")
