"""notify_state: how far the notifications to people have got

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01

One row: the answer time and id of the last message looked at for ``[notify]``. A process
takes the next batch by moving it forward with a compare-and-set, so that two processes
never notify of one message twice; it starts at the migration, so an existing database
does not notify of its past.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "notify_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("answered_at", sa.Float(), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
    )
    op.bulk_insert(table, [{"id": 1, "answered_at": time.time(), "message_id": 0}])


def downgrade() -> None:
    op.drop_table("notify_state")
