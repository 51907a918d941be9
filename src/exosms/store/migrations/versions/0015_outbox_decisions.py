"""outbox: who decided on a held SMS, and when

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

An SMS whose send Exotel may or may not have taken is held for a person: resend it or give
it up (``exosms outbox resend|give-up``, the inbox's outbox page). ``decided_by`` and
``decided_at`` keep who chose and when.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place on both databases: a batch would rebuild outbox on SQLite without 0012's
    # event triggers.
    op.add_column("outbox", sa.Column("decided_by", sa.String(64)))
    op.add_column("outbox", sa.Column("decided_at", sa.Float()))


def downgrade() -> None:
    op.drop_column("outbox", "decided_at")
    op.drop_column("outbox", "decided_by")
