"""claims: owner leases, takeovers counted, message ids never reused on SQLite

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A pending claim may be taken over only when its owner (one exosms process) has stopped
renewing its lease in ``claim_owners``; ``messages.takeovers`` counts the times that happened
to a message (its handler may then have run twice, and the inbox says so).

SQLite hands out max(id) + 1 for a table without AUTOINCREMENT: after a prune that removed the
newest rows, ids were reused, the inbox indexer (which indexes ids above its mark) never saw
the new messages, and deleting them later removed rows the full-text index never had, which
corrupts it. The table is rebuilt with AUTOINCREMENT, and the index rebuilt from the rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SQLITE_MESSAGES = """
CREATE TABLE messages_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sms_sid VARCHAR(128) NOT NULL UNIQUE,
    sender VARCHAR(256) NOT NULL,
    sender_raw VARCHAR(256) NOT NULL,
    recipient VARCHAR(256) NOT NULL,
    recipient_raw VARCHAR(256) NOT NULL,
    body TEXT NOT NULL,
    "query" TEXT NOT NULL,
    date_raw VARCHAR(256) NOT NULL,
    exotel_date FLOAT,
    received_at FLOAT NOT NULL,
    method VARCHAR(8) NOT NULL,
    state VARCHAR(16) NOT NULL,
    claim_owner VARCHAR(64),
    claim_expires FLOAT,
    reply TEXT,
    rule VARCHAR(200),
    outcome VARCHAR(32),
    handler_ms FLOAT,
    error TEXT,
    answered_at FLOAT,
    fetch_count INTEGER DEFAULT '0' NOT NULL,
    last_fetch_at FLOAT,
    reply_encoding VARCHAR(8),
    reply_units INTEGER,
    reply_parts INTEGER,
    dlt_template_id VARCHAR(32),
    dlt_reason TEXT,
    guard VARCHAR(32),
    late_reply TEXT,
    takeovers INTEGER DEFAULT '0' NOT NULL
)
"""
_COPIED = (
    'id, sms_sid, sender, sender_raw, recipient, recipient_raw, body, "query", date_raw,'
    " exotel_date, received_at, method, state, claim_owner, claim_expires, reply, rule, outcome,"
    " handler_ms, error, answered_at, fetch_count, last_fetch_at, reply_encoding, reply_units,"
    " reply_parts, dlt_template_id, dlt_reason, guard, late_reply"
)


def _rebuild_sqlite_messages() -> None:
    bind = op.get_bind()
    # Indexes and triggers go with the old table: keep their definitions to make them again.
    kept = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'messages'"
            " AND type IN ('index', 'trigger') AND sql IS NOT NULL"
        )
    ]
    op.execute(_SQLITE_MESSAGES)
    op.execute(f"INSERT INTO messages_rebuilt ({_COPIED}) SELECT {_COPIED} FROM messages")  # noqa: S608 - constant columns
    op.execute("DROP TABLE messages")
    op.execute("ALTER TABLE messages_rebuilt RENAME TO messages")
    for statement in kept:
        op.execute(statement)
    # Never hand out an id the indexer has already passed, even one whose row was pruned.
    op.execute("DELETE FROM sqlite_sequence WHERE name IN ('messages', 'messages_rebuilt')")
    op.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'messages',"
        " MAX(COALESCE((SELECT MAX(id) FROM messages), 0), (SELECT id FROM inbox_indexed))"
    )
    # Repair what reused ids broke: the index from the rows, conversations from the messages
    # (the unread marks kept).
    op.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
    op.execute("UPDATE inbox_indexed SET id = (SELECT COALESCE(MAX(id), 0) FROM messages)")
    op.execute("CREATE TEMP TABLE read_marks AS SELECT sender, read_id FROM conversations")
    op.execute("DELETE FROM conversations")
    op.execute(
        "INSERT INTO conversations (sender, recipient, last_message_id, last_at, message_count,"
        " read_id) SELECT m.sender, m.recipient, m.id, m.received_at, t.n,"
        " COALESCE((SELECT read_id FROM read_marks r WHERE r.sender = m.sender), 0)"
        " FROM messages m JOIN (SELECT sender, MAX(id) AS id, COUNT(*) AS n FROM messages"
        " GROUP BY sender) t ON t.id = m.id"
    )
    op.execute("DROP TABLE read_marks")


def upgrade() -> None:
    op.create_table(
        "claim_owners",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_messages()
    else:
        op.add_column(
            "messages",
            sa.Column("takeovers", sa.Integer, nullable=False, server_default="0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("takeovers")
    op.drop_table("claim_owners")
