"""The statements of the PostgreSQL store's hot path (``store.postgres`` runs them): the claim
through migration 0022's function, the answer and its queued reply in one statement, the
sender's standing for the guards, leases and replay counts. Kept apart from the store so that
the store reads as what it does; a column added changes both."""

from __future__ import annotations

from exosms.store.schema import insert_pending

INSERT = insert_pending(lambda i: f"${i}") + " RETURNING id"
# A new message's claim, with its sender's standing for the guards, in one round trip
# (migration 0022): NULL o_claimed when the SmsSid was already stored.
CLAIM_NEW = """
SELECT o_claimed, o_opted_out, o_recent, o_day, o_repeats
FROM exosms_claim_new($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
"""
# The same claim committed without waiting for the disk: for an answer worked out with no
# user code, whose own commit waits for the disk and with it for this one.
CLAIM_NEW_UNFLUSHED = """
SELECT o_claimed, o_opted_out, o_recent, o_day, o_repeats
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unflushed,
     exosms_claim_new($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
"""
# The claim's row, its owner's lease, and when the database server started: a lease that ran
# out while the server itself was down says nothing about its owner.
CLAIM_STATE = """
SELECT m.state, m.reply, m.claim_owner, m.claim_expires,
       (SELECT lease_until FROM claim_owners WHERE owner = m.claim_owner),
       extract(epoch FROM pg_postmaster_start_time())
FROM messages m WHERE m.sms_sid = $1 FOR UPDATE OF m
"""
RETAKE = "UPDATE messages SET claim_owner = $1, claim_expires = $2 WHERE sms_sid = $3"
TAKE_OVER = (
    "UPDATE messages SET claim_owner = $1, claim_expires = $2, takeovers = takeovers + 1"
    " WHERE sms_sid = $3"
)
RELEASE = (
    "UPDATE messages SET claim_owner = NULL, claim_expires = 0"
    " WHERE sms_sid = ANY($1::text[]) AND claim_owner = $2 AND state = 'pending'"
)
RENEW = """
INSERT INTO claim_owners (owner, lease_until, started_at) VALUES ($1, $2, $3)
ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until
"""
DROP_LEASE = "DELETE FROM claim_owners WHERE owner = $1"
FETCHED = "UPDATE messages SET fetch_count = fetch_count + 1, last_fetch_at = $1 WHERE sms_sid = $2"
FETCHED_MANY = (
    "UPDATE messages SET fetch_count = fetch_count + $1, last_fetch_at = $2 WHERE sms_sid = $3"
)
COMPLETE = """
UPDATE messages SET state = 'done', reply = $1, rule = $2, outcome = $3, handler_ms = $4,
    error = $5, answered_at = $6, reply_encoding = $7, reply_units = $8, reply_parts = $9,
    dlt_template_id = $10, dlt_reason = $11, guard = $12, refused_reply = $13,
    claim_owner = NULL, claim_expires = NULL
WHERE sms_sid = $14 AND state = 'pending'
RETURNING id
"""
STORED_ANSWER = "SELECT state, reply FROM messages WHERE sms_sid = $1"
# The answer and its reply queued for the send API in one statement (one round trip, its own
# transaction): the outbox row only if the answer was ours to store.
COMPLETE_AND_QUEUE = "".join(
    (
        "WITH done AS (",
        COMPLETE,
        """),
queued AS (
    INSERT INTO outbox (message_sid, to_number, sender, body, template_id, status, attempts,
        next_attempt_at, created_at, parts)
    SELECT $15::text, $16::text, $17::text, $18::text, $19::text, 'pending', 0,
        $20::double precision, $21::double precision, $22::integer
    WHERE EXISTS (SELECT 1 FROM done)
    ON CONFLICT (message_sid) DO NOTHING
)
SELECT id FROM done
""",
    )
)
QUEUE = """
INSERT INTO outbox (message_sid, to_number, sender, body, template_id, status, attempts,
    next_attempt_at, created_at, parts)
VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $8)
ON CONFLICT (message_sid) DO NOTHING
"""
SAVE_SESSION = """
INSERT INTO sessions (sender, recipient, data, expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (sender, recipient) DO UPDATE SET
    data = excluded.data, expires_at = excluded.expires_at, updated_at = excluded.updated_at
"""
# With guards, each claim takes its sender's lock, so that reply caps are exact across
# processes.
CLAIM_LOCK = "SELECT pg_advisory_xact_lock(hashtext($1))"
ADD_OPT_OUT = """
INSERT INTO optouts (sender, recipient, created_at, source) VALUES ($1, $2, $3, 'sms')
ON CONFLICT (sender, recipient) DO NOTHING
RETURNING sender
"""
DROP_OPT_OUT = "DELETE FROM optouts WHERE sender = $1 AND recipient IN ($2, '*') RETURNING sender"
# The sender's standing in one round trip: opted out?, replies in 10 minutes and in a day,
# and whether this text was answered within the loop window (pending claims count too).
STANDING = """
SELECT EXISTS (SELECT 1 FROM optouts WHERE sender = $1 AND recipient IN ($2, '*')),
       count(*) FILTER (WHERE received_at > $3),
       count(*),
       count(*) FILTER (WHERE received_at > $5 AND body = $6)
FROM messages
WHERE sender = $1 AND received_at > $4 AND sms_sid != $7
  AND (state = 'pending' OR reply IS NOT NULL)
"""
