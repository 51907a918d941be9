"""outbox: who wrote an SMS sent by hand, and the SMS sent to one number

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

A reply written in the inbox is an outbox row with no ``message_sid``; ``author`` says who
sent it (``NULL`` for what exosms sent by itself). ``ix_outbox_to`` finds a conversation's
replies by hand for its thread.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN in place on both databases (a batch would rebuild the table on SQLite and
    # drop the event triggers of 0012 with it).
    op.add_column("outbox", sa.Column("author", sa.String(64)))
    op.create_index("ix_outbox_to", "outbox", ["to_number", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_to", table_name="outbox")
    op.drop_column("outbox", "author")  # in place too (SQLite 3.35+)
