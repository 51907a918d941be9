"""The tables, as SQLAlchemy Core metadata. Alembic migrations create them; this module is
what the code reads. Times are epoch seconds (UTC) as floats, identical on every database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from exosms.store.base import NewMessage, StoredMessage

metadata = MetaData()

# Ids are 64-bit (migration 0011 on PostgreSQL); SQLite's INTEGER PRIMARY KEY is already.
ID = BigInteger().with_variant(Integer(), "sqlite")

messages = Table(
    "messages",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("sms_sid", String(128), nullable=False, unique=True),
    Column("sender", String(256), nullable=False),
    Column("sender_raw", String(256), nullable=False),
    Column("recipient", String(256), nullable=False),
    Column("recipient_raw", String(256), nullable=False),
    Column("body", Text, nullable=False),
    Column("query", Text, nullable=False),
    Column("date_raw", String(256), nullable=False),
    Column("exotel_date", Float),
    Column("received_at", Float, nullable=False),
    Column("method", String(8), nullable=False),
    Column("state", String(16), nullable=False),  # pending | done
    Column("claim_owner", String(64)),
    Column("claim_expires", Float),
    Column("reply", Text),
    Column("rule", String(200)),
    Column("outcome", String(32)),
    Column("handler_ms", Float),
    Column("error", Text),
    Column("answered_at", Float),
    Column("fetch_count", Integer, nullable=False, server_default="0"),
    Column("last_fetch_at", Float),
    Column("reply_encoding", String(8)),
    Column("reply_units", Integer),
    Column("reply_parts", Integer),
    Column("dlt_template_id", String(32)),
    Column("dlt_reason", Text),
    Column("guard", String(32)),  # why a reply was suppressed: opted_out, loop, ...
    Column("late_reply", Text),  # sent through the API after the deadline
    # times another process took the claim over after its owner stopped renewing its lease
    Column("takeovers", Integer, nullable=False, server_default="0"),
    Column("refused_reply", Text),  # the reply the DLT check refused, kept (0016)
    Index("ix_messages_received_at", "received_at"),
    Index(  # the refused replies, newest first, for the DLT page (0021)
        "ix_messages_refused",
        "received_at",
        sqlite_where=text("refused_reply IS NOT NULL"),
        postgresql_where=text("refused_reply IS NOT NULL"),
    ),
    Index("ix_messages_sender", "sender", "received_at"),
    Index(  # answered messages only: a claim adds no entry, an answer one (0023)
        "ix_messages_rule",
        "rule",
        "received_at",
        sqlite_where=text("rule IS NOT NULL"),
        postgresql_where=text("rule IS NOT NULL"),
    ),
    # and ix_messages_problems (outcome, received_at) for the rare outcomes (migration 0007)
    sqlite_autoincrement=True,  # ids never reused after a prune (migration 0008)
)

claim_owners = Table(  # one row per running exosms process: its lease on its claims
    "claim_owners",
    metadata,
    Column("owner", String(64), primary_key=True),
    Column("lease_until", Float, nullable=False),
    Column("started_at", Float, nullable=False),
)
# Also on messages (migration 0007): SQLite keeps the FTS5 table messages_fts in step by
# trigger; PostgreSQL has a GIN index on to_tsvector('simple', body || ' ' || reply).

conversations = Table(  # one row per sender, kept by a trigger on messages (migration 0007)
    "conversations",
    metadata,
    Column("sender", String(256), primary_key=True),
    Column("recipient", String(256), nullable=False),
    Column("last_message_id", ID, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("message_count", Integer, nullable=False),
    Column("read_id", ID, nullable=False, server_default="0"),  # the inbox's unread mark
    Column("assigned_to", String(32)),  # the person it is given to (0017)
    Column("closed_upto", ID),  # closed at this message id: a newer one opens it again
    Index("ix_conversations_last", "last_message_id"),
)

contacts = Table(  # a name per customer number (0019; store/contacts.py)
    "contacts",
    metadata,
    Column("number", String(256), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(32)),
    Index("ix_contacts_name", "name"),
)

notify_state = Table(  # how far [notify] has got (0018; exosms/notifications.py)
    "notify_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("answered_at", Float, nullable=False),
    Column("message_id", ID, nullable=False),
)

users = Table(  # the inbox's people but the first admin (0017; store/users.py)
    "users",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

web_sessions = Table(  # inbox logins
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie's token
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("user_name", String(32)),  # NULL: the first admin ([inbox] password_hash)
)

login_attempts = Table(  # the inbox's lockout: one row per password check, per address
    "login_attempts",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("address", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_login_attempts_address", "address", "at"),
)

dlt_templates = Table(
    "dlt_templates",
    metadata,
    Column("template_id", String(32), primary_key=True),
    Column("entity_id", String(32), nullable=False, server_default=""),
    Column("name", String(200), nullable=False, server_default=""),
    Column("headers", Text, nullable=False, server_default="[]"),  # JSON list
    Column("category", String(64), nullable=False, server_default=""),
    Column("content", Text, nullable=False),
    Column("status", String(32), nullable=False, server_default="approved"),
    Column("url_whitelist", Text, nullable=False, server_default="[]"),  # JSON list
    Column("cbn_whitelist", Text, nullable=False, server_default="[]"),  # JSON list
    Column("updated_at", Float, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("sender", String(256), primary_key=True),
    Column("recipient", String(256), primary_key=True),
    Column("data", Text, nullable=False),  # JSON object
    Column("expires_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

optouts = Table(
    "optouts",
    metadata,
    Column("sender", String(256), primary_key=True),
    Column("recipient", String(256), primary_key=True),  # "*": every number
    Column("created_at", Float, nullable=False),
    Column("source", String(16), nullable=False),  # sms | cli
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("message_sid", String(128), unique=True),
    Column("to_number", String(256), nullable=False),
    Column("sender", String(256)),
    Column("body", Text, nullable=False),
    Column("template_id", String(32)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("exotel_sid", String(128)),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("parts", Integer),
    Column("delivery_status", String(32)),
    Column("detailed_status", String(128)),
    Column("detailed_status_code", String(16)),
    Column("sms_units", Integer),
    Column("date_sent", String(64)),
    Column("checked_at", Float),  # when the reconciler last asked Exotel about it
    Column("author", String(64)),  # who sent it from the inbox; NULL: exosms itself
    Column("decided_by", String(64)),  # who resent or gave up a held SMS (0015)
    Column("decided_at", Float),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_exotel_sid", "exotel_sid"),
    Index("ix_outbox_to", "to_number", "id"),  # a number's SMS, newest first (0020)
    Index(  # a number's replies sent by hand, for its thread (0020)
        "ix_outbox_hand",
        "to_number",
        "created_at",
        sqlite_where=text("author IS NOT NULL"),
        postgresql_where=text("author IS NOT NULL"),
    ),
)

delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("exotel_sid", String(128)),
    Column("outbox_id", ID),
    Column("status", String(32)),
    Column("payload", Text, nullable=False),
    Column("received_at", Float, nullable=False),
)

# Every event, written by triggers (migration 0012) with the row it describes, and its
# delivery to each forwarding destination (store/events.py, docs/forwarding.md).
events = Table(
    "events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event_id", String(300), nullable=False),  # unique by construction: no index
    Column("type", String(32), nullable=False),
    Column("sender", String(256), nullable=False),
    Column("recipient", String(256)),
    Column("sms_sid", String(128)),
    Column("outbox_id", ID),
    Column("data", Text),
    Column("created_at", Float, nullable=False),
    Column("fanned", Integer, nullable=False, server_default="0"),
    Index(
        "ix_events_unfanned",
        "id",
        sqlite_where=text("fanned = 0"),
        postgresql_where=text("fanned = 0"),
    ),
    Index("ix_events_created", "created_at"),
)

forwards = Table(
    "forwards",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event", ID, nullable=False),
    Column("destination", String(64), nullable=False),
    Column("sender", String(256), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float),
    Index("ix_forwards_due", "destination", "state", "next_attempt_at"),
    Index("ix_forwards_sender", "destination", "sender", "state", "id"),
    Index("ix_forwards_order", "destination", "state", "id"),
    Index("ix_forwards_event", "event"),
)

# The message row is declared once, as StoredMessage: the column list (and so every SELECT
# and StoredMessage(*row)) follows its fields; tests/store/test_schema.py checks the table.
MESSAGE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StoredMessage))

NEW_MESSAGE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NewMessage))


def insert_pending(mark: Callable[[int], str]) -> str:
    """The INSERT of a pending message: :meth:`NewMessage.row`'s values (the message, then
    the claim's owner and expiry), with the driver's placeholders (``mark(1)``: ``?1``, ``$1``)."""
    count = len(NEW_MESSAGE_COLUMNS)
    received = NEW_MESSAGE_COLUMNS.index("received_at") + 1
    values = ", ".join(mark(i) for i in range(1, count + 1))
    # Column names from the dataclass and placeholders only: no value is ever formatted in.
    return (
        f"INSERT INTO messages ({', '.join(NEW_MESSAGE_COLUMNS)}, state, claim_owner,"  # noqa: S608
        " claim_expires, fetch_count, last_fetch_at)"
        f" VALUES ({values}, 'pending', {mark(count + 1)}, {mark(count + 2)}, 1, {mark(received)})"
        " ON CONFLICT (sms_sid) DO NOTHING"
    )
