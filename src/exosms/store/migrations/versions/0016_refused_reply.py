"""messages: the reply that was worked out and not sent (DLT refused it, or too long)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

A reply the DLT check refused was thrown away: the shop saw only the reason, never the text
it would have to register. ``refused_reply`` keeps it (the fallback, if one was sent, is in
``reply`` as before); the inbox's DLT page groups them by closest template.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("refused_reply", sa.Text()))  # in place: see 0014


def downgrade() -> None:
    op.drop_column("messages", "refused_reply")
