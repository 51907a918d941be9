"""messages: the refused replies, newest first, for the DLT page

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01

On PostgreSQL with 1,000,000 messages the DLT page read all 15,000 DLT-refused rows
through ix_messages_problems (13,000 heap blocks) to show the newest: 50 ms. A partial
index of the rows that kept a refused reply, by time, reads only those shown.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_REFUSED = sa.text("refused_reply IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_messages_refused",
        "messages",
        ["received_at"],
        sqlite_where=_REFUSED,
        postgresql_where=_REFUSED,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_refused", table_name="messages")
