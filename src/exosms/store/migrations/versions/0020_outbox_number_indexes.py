"""outbox: the indexes a number's SMS are read by

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01

Measured on 1,000,000 messages and 333,000 outbox rows (bench/inbox.py): the outbox page for
one busy number took 147 ms and its conversation 25 ms, both reading every outbox row of
the number through ix_outbox_to (to_number, created_at). The outbox page walks
``(to_number, id)`` newest first; the thread reads only the replies sent by hand, kept in a
partial index of their own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_HAND = sa.text("author IS NOT NULL")  # replies by hand: the only rows with an author


def upgrade() -> None:
    op.drop_index("ix_outbox_to", table_name="outbox")
    op.create_index("ix_outbox_to", "outbox", ["to_number", "id"])
    op.create_index(
        "ix_outbox_hand",
        "outbox",
        ["to_number", "created_at"],
        sqlite_where=_HAND,
        postgresql_where=_HAND,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_hand", table_name="outbox")
    op.drop_index("ix_outbox_to", table_name="outbox")
    op.create_index("ix_outbox_to", "outbox", ["to_number", "created_at"])
