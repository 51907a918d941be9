"""events: every message, answer, delivery status and opt-out, kept to be forwarded

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

``events`` holds one row per thing that happened, written by triggers in the same
transaction as the row it describes (no event without its message, no message without its
event, whichever code writes it). ``forwards`` holds each event's delivery to each
destination. See docs/forwarding.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# (trigger name, table, timing and condition, the event's columns as SQL over NEW/OLD)
_EVENTS = "event_id, type, sender, recipient, sms_sid, outbox_id, data, created_at, fanned"


def _sqlite_triggers() -> list[str]:
    now = "((julianday('now') - 2440587.5) * 86400.0)"
    return [
        f"""CREATE TRIGGER events_received AFTER INSERT ON messages BEGIN
  INSERT INTO events ({_EVENTS}) VALUES (NEW.sms_sid || ':received',
    'sms.received', NEW.sender, NEW.recipient, NEW.sms_sid, NULL, NULL, NEW.received_at, 0);
END""",
        f"""CREATE TRIGGER events_answered AFTER UPDATE OF state ON messages
WHEN NEW.state = 'done' AND OLD.state != 'done' BEGIN
  INSERT INTO events ({_EVENTS}) VALUES (NEW.sms_sid || ':answered',
    'sms.answered', NEW.sender, NEW.recipient, NEW.sms_sid, NULL, NULL,
    COALESCE(NEW.answered_at, {now}), 0);
END""",
        f"""CREATE TRIGGER events_opted_out AFTER INSERT ON optouts BEGIN
  INSERT INTO events ({_EVENTS}) VALUES (
    'opted_out:' || NEW.sender || ':' || NEW.recipient || ':' || NEW.created_at,
    'sms.opted_out', NEW.sender, NEW.recipient, NULL, NULL,
    json_object('recipient', NEW.recipient, 'source', NEW.source), NEW.created_at, 0);
END""",
        f"""CREATE TRIGGER events_opted_in AFTER DELETE ON optouts BEGIN
  INSERT INTO events ({_EVENTS}) VALUES (
    'opted_in:' || OLD.sender || ':' || OLD.recipient || ':' || {now},
    'sms.opted_in', OLD.sender, OLD.recipient, NULL, NULL,
    json_object('recipient', OLD.recipient, 'source', OLD.source), {now}, 0);
END""",
        f"""CREATE TRIGGER events_delivery AFTER INSERT ON delivery_events
WHEN NEW.outbox_id IS NOT NULL BEGIN
  INSERT INTO events ({_EVENTS})
  SELECT 'delivery:' || NEW.id, 'sms.delivery', o.to_number,
    (SELECT m.recipient FROM messages m WHERE m.sms_sid = o.message_sid), o.message_sid,
    o.id, json_object('status', NEW.status, 'exotel_sid', NEW.exotel_sid), NEW.received_at, 0
  FROM outbox o WHERE o.id = NEW.outbox_id;
END""",
        f"""CREATE TRIGGER events_held AFTER UPDATE OF status ON outbox
WHEN NEW.status = 'held' AND OLD.status != 'held' BEGIN
  INSERT INTO events ({_EVENTS}) VALUES (
    'held:' || NEW.id || ':' || NEW.attempts, 'reply.held', NEW.to_number,
    (SELECT m.recipient FROM messages m WHERE m.sms_sid = NEW.message_sid), NEW.message_sid,
    NEW.id, json_object('reason', NEW.last_error), {now}, 0);
END""",
    ]


def _postgres_triggers() -> list[str]:
    now = "extract(epoch FROM clock_timestamp())"
    bodies = {
        "received": (
            "messages",
            "AFTER INSERT",
            f"INSERT INTO events ({_EVENTS}) VALUES (NEW.sms_sid || ':received',"
            " 'sms.received', NEW.sender, NEW.recipient, NEW.sms_sid, NULL, NULL,"
            " NEW.received_at, 0)",
            "",
        ),
        "answered": (
            "messages",
            "AFTER UPDATE OF state",
            f"INSERT INTO events ({_EVENTS}) VALUES (NEW.sms_sid || ':answered',"
            " 'sms.answered', NEW.sender, NEW.recipient, NEW.sms_sid, NULL, NULL,"
            f" COALESCE(NEW.answered_at, {now}), 0)",
            "WHEN (NEW.state = 'done' AND OLD.state <> 'done')",
        ),
        "opted_out": (
            "optouts",
            "AFTER INSERT",
            f"INSERT INTO events ({_EVENTS}) VALUES ("
            "'opted_out:' || NEW.sender || ':' || NEW.recipient || ':' || NEW.created_at,"
            " 'sms.opted_out', NEW.sender, NEW.recipient, NULL, NULL,"
            " json_build_object('recipient', NEW.recipient, 'source', NEW.source)::text,"
            " NEW.created_at, 0)",
            "",
        ),
        "opted_in": (
            "optouts",
            "AFTER DELETE",
            f"INSERT INTO events ({_EVENTS}) VALUES ("
            f"'opted_in:' || OLD.sender || ':' || OLD.recipient || ':' || {now},"
            " 'sms.opted_in', OLD.sender, OLD.recipient, NULL, NULL,"
            " json_build_object('recipient', OLD.recipient, 'source', OLD.source)::text,"
            f" {now}, 0)",
            "",
        ),
        "delivery": (
            "delivery_events",
            "AFTER INSERT",
            f"INSERT INTO events ({_EVENTS})"
            " SELECT 'delivery:' || NEW.id, 'sms.delivery', o.to_number,"
            " (SELECT m.recipient FROM messages m WHERE m.sms_sid = o.message_sid),"
            " o.message_sid, o.id,"
            " json_build_object('status', NEW.status, 'exotel_sid', NEW.exotel_sid)::text,"
            " NEW.received_at, 0 FROM outbox o WHERE o.id = NEW.outbox_id",
            "WHEN (NEW.outbox_id IS NOT NULL)",
        ),
        "held": (
            "outbox",
            "AFTER UPDATE OF status",
            f"INSERT INTO events ({_EVENTS}) VALUES ("
            "'held:' || NEW.id || ':' || NEW.attempts, 'reply.held', NEW.to_number,"
            " (SELECT m.recipient FROM messages m WHERE m.sms_sid = NEW.message_sid),"
            " NEW.message_sid, NEW.id, json_build_object('reason', NEW.last_error)::text,"
            f" {now}, 0)",
            "WHEN (NEW.status = 'held' AND OLD.status <> 'held')",
        ),
    }
    statements = []
    for name, (table, timing, insert, when) in bodies.items():
        statements.append(
            f"CREATE FUNCTION exosms_event_{name}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {insert} ; RETURN NULL; END $$"
        )
        statements.append(
            f"CREATE TRIGGER events_{name} {timing} ON {table} FOR EACH ROW {when}"
            f" EXECUTE FUNCTION exosms_event_{name}()"
        )
    return statements


TRIGGERS = ("received", "answered", "opted_out", "opted_in", "delivery", "held")
TRIGGER_TABLES = {
    "received": "messages",
    "answered": "messages",
    "opted_out": "optouts",
    "opted_in": "optouts",
    "delivery": "delivery_events",
    "held": "outbox",
}


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        # Unique by construction (each trigger fires once per row or transition): no index,
        # which would cost every SMS two more index writes for a key nothing looks up.
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(256), nullable=False),
        sa.Column("recipient", sa.String(256)),
        sa.Column("sms_sid", sa.String(128)),
        sa.Column("outbox_id", _id()),
        sa.Column("data", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("fanned", sa.Integer(), nullable=False, server_default="0"),
    )
    # Only the events not yet handed out are in it: it stays small however many are kept.
    op.create_index(
        "ix_events_unfanned",
        "events",
        ["id"],
        sqlite_where=sa.text("fanned = 0"),
        postgresql_where=sa.text("fanned = 0"),
    )
    op.create_index("ix_events_created", "events", ["created_at"])
    op.create_table(
        "forwards",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("event", _id(), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float()),
    )
    op.create_index("ix_forwards_due", "forwards", ["destination", "state", "next_attempt_at"])
    op.create_index("ix_forwards_sender", "forwards", ["destination", "sender", "state", "id"])
    op.create_index("ix_forwards_event", "forwards", ["event"])
    triggers = (
        _postgres_triggers() if op.get_bind().dialect.name == "postgresql" else _sqlite_triggers()
    )
    for statement in triggers:  # as written: ':received' is text, not a bound parameter
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS events_{name} ON {TRIGGER_TABLES[name]}")
            op.execute(f"DROP FUNCTION IF EXISTS exosms_event_{name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS events_{name}")
    op.drop_table("forwards")
    op.drop_table("events")
