"""ids as 64-bit integers on PostgreSQL

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

PostgreSQL's ``SERIAL`` ids were 32-bit while the API takes ids up to 2^63 - 1 (``before``,
``upto``): a larger one was refused by the database as "out of range". The columns that hold
message, outbox and login-attempt ids, and their sequences, become ``BIGINT``. SQLite's
``INTEGER`` is 64-bit already: nothing changes there.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID_COLUMNS = (
    ("messages", "id", True),
    ("conversations", "last_message_id", False),
    ("conversations", "read_id", False),
    ("outbox", "id", True),
    ("delivery_events", "id", True),
    ("delivery_events", "outbox_id", False),
    ("login_attempts", "id", True),
)


def _alter(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, serial in ID_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind}")
        if serial:
            op.execute(
                f"ALTER SEQUENCE {table}_{column}_seq AS {kind}"
                + (" MAXVALUE 2147483647" if kind == "INTEGER" else " NO MAXVALUE")
            )


def upgrade() -> None:
    _alter("BIGINT")


def downgrade() -> None:
    _alter("INTEGER")
