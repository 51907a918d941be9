"""inbox: conversations, full-text search of bodies, filter indexes, login sessions

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

PROBLEMS = "outcome NOT IN ('replied', 'no_reply')"  # also in exosms.store.inbox

# SQLite: the unicode61 tokenizer, with combining marks (M*) kept inside words so that
# Devanagari vowel signs do not split a Hindi word in two. No per-row sizes (columnsize=0: they
# serve only relevance ranking, and results are newest first) and no word positions
# (detail=column: words and prefixes are searched, not phrases): a smaller, cheaper index.
#
# No trigger fills it: the store's indexer adds new messages to it and to conversations in
# batches, off the request path (exosms.store.sqlite.index_inbox); inbox_indexed holds the
# last message id it has seen. A trigger per row cost the hot path a quarter of its speed.
_SQLITE = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages',"
    " content_rowid='id', columnsize=0, detail=column,"
    " tokenize=\"unicode61 remove_diacritics 2 categories 'L* N* Co M*'\")",
    "CREATE TABLE inbox_indexed (id INTEGER NOT NULL)",
    "INSERT INTO inbox_indexed (id) SELECT COALESCE(MAX(id), 0) FROM messages",
    "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages"
    " WHEN old.id <= (SELECT id FROM inbox_indexed) BEGIN"
    " INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);"
    " END",
]

_POSTGRES = [
    "CREATE INDEX ix_messages_text ON messages USING gin (to_tsvector('simple', body))",
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
    # Only the rare outcomes are indexed (problems worth finding among a million replies);
    # the common ones are dense enough to find by walking the time index. Every index here is
    # one more write per answer on the hot path.
    op.create_index(
        "ix_messages_problems",
        "messages",
        ["outcome", "received_at"],
        sqlite_where=sa.text(PROBLEMS),
        postgresql_where=sa.text(PROBLEMS),
    )
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
        op.execute("DROP TRIGGER messages_fts_delete")
        op.execute("DROP TABLE messages_fts")
        op.execute("DROP TABLE inbox_indexed")
    op.drop_index("ix_messages_rule", "messages")
    op.drop_index("ix_messages_problems", "messages")
    op.drop_table("web_sessions")
    op.drop_index("ix_conversations_last", "conversations")
    op.drop_table("conversations")
