"""inbox: conversations kept by trigger, full-text search, filter indexes, login sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# SQLite: the unicode61 tokenizer, with combining marks (M*) kept inside words so that
# Devanagari vowel signs do not split a Hindi word in two.
_SQLITE = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5(body, reply, content='messages',"
    " content_rowid='id', tokenize=\"unicode61 remove_diacritics 2 categories 'L* N* Co M*'\")",
    "INSERT INTO messages_fts (rowid, body, reply) SELECT id, body, reply FROM messages",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
    " INSERT INTO messages_fts (rowid, body, reply) VALUES (new.id, new.body, new.reply); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
    " INSERT INTO messages_fts (messages_fts, rowid, body, reply)"
    " VALUES ('delete', old.id, old.body, old.reply); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, reply ON messages BEGIN"
    " INSERT INTO messages_fts (messages_fts, rowid, body, reply)"
    " VALUES ('delete', old.id, old.body, old.reply);"
    " INSERT INTO messages_fts (rowid, body, reply) VALUES (new.id, new.body, new.reply); END",
    "CREATE TRIGGER messages_conversation AFTER INSERT ON messages BEGIN"
    " INSERT INTO conversations (sender, recipient, last_message_id, last_at, message_count,"
    " read_id) VALUES (new.sender, new.recipient, new.id, new.received_at, 1, 0)"
    " ON CONFLICT (sender) DO UPDATE SET recipient = excluded.recipient,"
    " last_message_id = excluded.last_message_id, last_at = excluded.last_at,"
    " message_count = conversations.message_count + 1; END",
]

_POSTGRES = [
    "CREATE INDEX ix_messages_text ON messages USING gin"
    " (to_tsvector('simple', body || ' ' || coalesce(reply, '')))",
    """CREATE FUNCTION exosms_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO conversations AS c (sender, recipient, last_message_id, last_at,
            message_count, read_id)
        VALUES (NEW.sender, NEW.recipient, NEW.id, NEW.received_at, 1, 0)
        ON CONFLICT (sender) DO UPDATE SET recipient = excluded.recipient,
            last_message_id = GREATEST(c.last_message_id, excluded.last_message_id),
            last_at = GREATEST(c.last_at, excluded.last_at),
            message_count = c.message_count + 1;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER messages_conversation AFTER INSERT ON messages"
    " FOR EACH ROW EXECUTE FUNCTION exosms_conversation()",
]


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("sender", sa.String(256), primary_key=True),
        sa.Column("recipient", sa.String(256), nullable=False),
        sa.Column("last_message_id", sa.Integer, nullable=False),
        sa.Column("last_at", sa.Float, nullable=False),
        sa.Column("message_count", sa.Integer, nullable=False),
        sa.Column("read_id", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_conversations_last", "conversations", ["last_message_id"])
    op.execute(
        "INSERT INTO conversations (sender, recipient, last_message_id, last_at, message_count,"
        " read_id) SELECT m.sender, m.recipient, m.id, m.received_at, t.n, 0 FROM messages m"
        " JOIN (SELECT sender, MAX(id) AS id, COUNT(*) AS n FROM messages GROUP BY sender) t"
        " ON t.id = m.id"
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),  # sha256 of the cookie's token
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_messages_outcome", "messages", ["outcome", "received_at"])
    op.create_index("ix_messages_rule", "messages", ["rule", "received_at"])
    statements = _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER messages_conversation ON messages")
        op.execute("DROP FUNCTION exosms_conversation()")
        op.execute("DROP INDEX ix_messages_text")
    else:
        for trigger in ("fts_insert", "fts_delete", "fts_update", "conversation"):
            op.execute(f"DROP TRIGGER messages_{trigger}")
        op.execute("DROP TABLE messages_fts")
    op.drop_index("ix_messages_rule", "messages")
    op.drop_index("ix_messages_outcome", "messages")
    op.drop_table("web_sessions")
    op.drop_index("ix_conversations_last", "conversations")
    op.drop_table("conversations")
