"""contacts: a name per customer number, shown instead of the bare number

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("number", sa.String(256), primary_key=True),  # as messages.sender holds it
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(32)),
    )
    op.create_index("ix_contacts_name", "contacts", ["name"])


def downgrade() -> None:
    op.drop_table("contacts")
