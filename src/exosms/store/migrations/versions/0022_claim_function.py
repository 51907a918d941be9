"""PostgreSQL: a new message's claim in one round trip (exosms_claim_new)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02

A claim was five round trips on one connection (BEGIN, the sender's advisory lock, the
INSERT, the sender's standing for the guards, COMMIT). This function does the common case
(a new SmsSid, no opt-out change) in one call, in its own transaction: the lock is taken by
its first statement, so the standing, read by a later one with a fresh snapshot, counts
every claim of the sender committed before it, as before. ``o_claimed`` is NULL when the
SmsSid was already stored: the caller then runs the full claim (answered, retaken, taken
over). Its INSERT lists the columns of ``NewMessage`` as of this revision; a migration that
changes them replaces this function (tests/store check they agree). SQLite: nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION exosms_claim_new(
    p_sms_sid text, p_sender text, p_sender_raw text, p_recipient text, p_recipient_raw text,
    p_body text, p_query text, p_date_raw text, p_exotel_date double precision,
    p_received_at double precision, p_method text, p_owner text, p_expires double precision,
    p_guarded boolean, p_ten_min double precision, p_day double precision,
    p_loop double precision
) RETURNS TABLE (
    o_claimed bigint, o_opted_out boolean, o_recent bigint, o_day bigint, o_repeats bigint
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    new_id bigint;
BEGIN
    IF p_guarded THEN
        PERFORM pg_advisory_xact_lock(hashtext(p_sender));
    END IF;
    INSERT INTO messages (sms_sid, sender, sender_raw, recipient, recipient_raw, body, query,
        date_raw, exotel_date, received_at, method, state, claim_owner, claim_expires,
        fetch_count, last_fetch_at)
    VALUES (p_sms_sid, p_sender, p_sender_raw, p_recipient, p_recipient_raw, p_body, p_query,
        p_date_raw, p_exotel_date, p_received_at, p_method, 'pending', p_owner, p_expires,
        1, p_received_at)
    ON CONFLICT (sms_sid) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL OR NOT p_guarded THEN
        RETURN QUERY SELECT new_id, NULL::boolean, NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT new_id,
           EXISTS (SELECT 1 FROM optouts o
                   WHERE o.sender = p_sender AND o.recipient IN (p_recipient, '*')),
           count(*) FILTER (WHERE m.received_at > p_ten_min),
           count(*),
           count(*) FILTER (WHERE m.received_at > p_loop AND m.body = p_body)
    FROM messages m
    WHERE m.sender = p_sender AND m.received_at > p_day AND m.sms_sid != p_sms_sid
      AND (m.state = 'pending' OR m.reply IS NOT NULL);
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS exosms_claim_new")
