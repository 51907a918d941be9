"""outbox: SMS sent through Exotel's API, and every delivery status callback

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_sid", sa.String(128), unique=True),  # the SMS this answers, if any
        sa.Column("to_number", sa.String(256), nullable=False),
        sa.Column("sender", sa.String(256)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("template_id", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),  # pending|sending|sent|failed
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("exotel_sid", sa.String(128)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("parts", sa.Integer),  # our estimate, beside Exotel's SmsUnits
        sa.Column("delivery_status", sa.String(32)),
        sa.Column("detailed_status", sa.String(128)),
        sa.Column("detailed_status_code", sa.String(16)),
        sa.Column("sms_units", sa.Integer),
        sa.Column("date_sent", sa.String(64)),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_exotel_sid", "outbox", ["exotel_sid"])
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("exotel_sid", sa.String(128)),
        sa.Column("outbox_id", sa.Integer),  # null: an SmsSid we do not know (kept to inspect)
        sa.Column("status", sa.String(32)),
        sa.Column("payload", sa.Text, nullable=False),  # JSON of every field received
        sa.Column("received_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("delivery_events")
    op.drop_table("outbox")
