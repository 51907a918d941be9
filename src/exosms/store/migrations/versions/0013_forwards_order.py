"""forwards: an index that walks a destination's pending rows in id order

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

The lease takes a destination's oldest due rows. Through ``ix_forwards_due`` it had to read
every pending row and sort them before its ``LIMIT``: 6.8 ms per lease of 10 rows with
6,000 pending on SQLite, so the forwarder slowed down exactly when it fell behind. Walking
``(destination, state, id)`` stops after the rows it takes (0.5 ms).
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_forwards_order", "forwards", ["destination", "state", "id"])


def downgrade() -> None:
    op.drop_index("ix_forwards_order", table_name="forwards")
