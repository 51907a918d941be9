"""outbox: when Exotel was last asked about a row (the reconciler)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Rows also take the statuses ``posting`` (the POST may be on its way: never resent blindly),
``unknown`` (Exotel's answer was lost: waiting for its status callback) and ``held`` (waiting
for a person to resend or give up); the column is a string, so no change is needed for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("checked_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("checked_at")
