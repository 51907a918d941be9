"""dlt: template registry, and each reply's encoding, parts and DLT verdict

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dlt_templates",
        sa.Column("template_id", sa.String(32), primary_key=True),
        sa.Column("entity_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("headers", sa.Text, nullable=False, server_default="[]"),
        sa.Column("category", sa.String(64), nullable=False, server_default=""),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="approved"),
        sa.Column("url_whitelist", sa.Text, nullable=False, server_default="[]"),
        sa.Column("cbn_whitelist", sa.Text, nullable=False, server_default="[]"),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reply_encoding", sa.String(8)))
        batch.add_column(sa.Column("reply_units", sa.Integer))
        batch.add_column(sa.Column("reply_parts", sa.Integer))
        batch.add_column(sa.Column("dlt_template_id", sa.String(32)))
        batch.add_column(sa.Column("dlt_reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        for column in (
            "reply_encoding",
            "reply_units",
            "reply_parts",
            "dlt_template_id",
            "dlt_reason",
        ):
            batch.drop_column(column)
    op.drop_table("dlt_templates")
