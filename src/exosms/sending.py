"""The outbox worker: sends stored SMS through Exotel's API, once each, and records why not.

Every outgoing SMS is stored first (in the :class:`~exosms.store.outbox.Outbox`); this
worker leases due rows and sends them a group at a time (up to ``sends_at_once``, never two
to one customer at once): it marks the group ``posting`` in one durable write before its
POSTs, posts them together, and marks them sent (with Exotel's SmsSid, again one write) or
failed (with Exotel's reason and code). What Exotel cannot have
seen (no connection, 429, 503) is retried later with backoff; what it may have accepted (its
answer lost) becomes ``unknown``: the status callback settles it, else it is held for a
person (or resent, by the ``unknown_policy``). The reconciler asks Exotel's SMS details
endpoint about sent SMS whose callback never came, a few per minute.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence

from pydantic import SecretStr

from exosms.config import ExotelSettings
from exosms.dlt import TemplateRegistry
from exosms.exotel.callbacks import sign
from exosms.exotel.client import Ambiguous, Client, ExotelError, OutgoingSms, SendResult
from exosms.metrics import Metrics
from exosms.store.base import StoreUnavailable
from exosms.store.outbox import Outbox, OutboxRow, Sent

log = logging.getLogger("exosms.outbox")

LEASE_SECONDS = 60.0  # a row being sent is not taken by another worker for this long
MAX_ATTEMPTS = 8
BATCH = 50
SENDS_AT_ONCE = 8  # POSTs in flight together, to different customers


class OutboxWorker:
    """Runs beside the server: ``start()`` in the lifespan, ``stop()`` at shutdown."""

    def __init__(
        self,
        outbox: Outbox,
        client: Client,
        *,
        signing_key: bytes,
        status_callback: str | None = None,
        poll_seconds: float = 1.0,
        unknown_wait: float = 600.0,
        resend_unknown: bool = False,
        reconcile_after: float = 900.0,
        reconcile_per_minute: int = 30,
        lease_seconds: float = LEASE_SECONDS,
        sends_at_once: int = SENDS_AT_ONCE,
        metrics: Metrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.metrics = metrics
        self.client = client
        self.signing_key = signing_key
        self.status_callback = status_callback
        self.poll_seconds = poll_seconds
        self.unknown_wait = unknown_wait
        self.resend_unknown = resend_unknown
        self.reconcile_after = reconcile_after
        self.reconcile_per_minute = reconcile_per_minute
        self.lease_seconds = lease_seconds
        self.sends_at_once = max(1, sends_at_once)
        self._lookups: collections.deque[float] = collections.deque()  # times of look-ups
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Something was queued: send it now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    async def _run(self) -> None:
        swept = float("-inf")  # when the sweep and the reconciler last ran
        while True:
            # The sweep and the reconciler look for leases that ran out and for callbacks
            # that never came (minutes, not milliseconds): once per poll, not per batch.
            housekeeping = time.monotonic() - swept >= self.poll_seconds
            try:
                if housekeeping:
                    swept = time.monotonic()
                    await self.sweep()
                rows = await self.outbox.lease_due(BATCH, self.lease_seconds)
            except StoreUnavailable as error:
                log.warning("outbox: database unavailable: %s", error)
                self._database_error()
                rows = []
            try:
                await self.send_rows(rows)
            except StoreUnavailable as error:
                log.warning("outbox: database unavailable while sending: %s", error)
                self._database_error()
            try:
                if housekeeping:
                    await self.reconcile()
            except StoreUnavailable as error:
                log.warning("outbox: database unavailable: %s", error)
            if len(rows) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                self._wake.clear()

    async def sweep(self) -> None:
        """Posted rows of a dead worker become ``unknown``; ``unknown`` rows past their wait
        are held (or resent, by the policy)."""
        died, settled = await self.outbox.sweep(time.time(), self.unknown_wait, self.resend_unknown)
        if died:
            log.warning("outbox: %d SMS may have been sent by a stopped worker: unknown", died)
        if settled:
            what = "sent again" if self.resend_unknown else "held for a person"
            log.warning("outbox: %d SMS in doubt got no status callback: %s", settled, what)

    async def reconcile(self) -> None:
        """Ask Exotel about sent SMS whose final status never came (bounded per minute)."""
        now = time.monotonic()
        while self._lookups and self._lookups[0] < now - 60.0:
            self._lookups.popleft()
        allowed = self.reconcile_per_minute - len(self._lookups)
        if allowed <= 0:
            return
        wall = time.time()
        rows = await self.outbox.unsettled(
            wall - self.reconcile_after, wall - self.reconcile_after, allowed
        )
        for row in rows:
            self._lookups.append(now)
            assert row.exotel_sid is not None
            try:
                entry = await self.client.details(row.exotel_sid)
            except ExotelError as error:
                log.warning("outbox %d: Exotel's details did not answer: %s", row.id, error)
                await self.outbox.mark_checked(row.id)
                continue
            fields = {k: "" if v is None else str(v) for k, v in entry.items()}
            fields["SmsSid"] = row.exotel_sid
            await self.outbox.record_status(fields, row.id)
            await self.outbox.mark_checked(row.id)
            log.info("outbox %d reconciled: %s", row.id, fields.get("Status") or "no status")

    async def send_row(self, row: OutboxRow) -> None:
        """Send one leased row (``exosms send``)."""
        await self.send_rows([row])

    async def send_rows(self, rows: Sequence[OutboxRow]) -> None:
        """Send leased rows, up to ``sends_at_once`` POSTs at a time, never two to one
        customer at once: a customer's replies leave in the order they were queued."""
        waiting = list(rows)
        while waiting:
            group: list[OutboxRow] = []
            later: list[OutboxRow] = []
            numbers: set[str] = set()
            for row in waiting:
                if len(group) < self.sends_at_once and row.to_number not in numbers:
                    group.append(row)
                    numbers.add(row.to_number)
                else:
                    later.append(row)
            await self._send_group(group)
            waiting = later

    async def _send_group(self, group: Sequence[OutboxRow]) -> None:
        prepared: list[tuple[OutboxRow, dict[str, str]]] = []
        for row in group:
            sms = OutgoingSms(
                to=row.to_number,
                body=row.body,
                sender=row.sender,
                template_id=row.template_id,
                status_callback=self.status_callback,
                custom_field=sign(row.id, self.signing_key),
            )
            try:
                prepared.append((row, self.client.prepare(sms)))
            except ExotelError as error:  # refused here, before any POST: final
                await self.outbox.mark_failed(row.id, str(error))
                log.warning("outbox %d not sent: %s", row.id, error)
                self._count("refused")
        if not prepared:
            return
        # Durable first, one write for the group: never resent blindly. The rows stay
        # ``posting`` until every answer of the group is in, then are recorded together.
        await self.outbox.mark_posting([row.id for row, _ in prepared])
        answers = await asyncio.gather(*(self._post(fields) for _, fields in prepared))
        sent: list[Sent] = []
        for (row, fields), answer in zip(prepared, answers, strict=True):
            if isinstance(answer, ExotelError):
                await self._not_sent(row, answer)
            else:
                sent.append(Sent(row.id, answer.sid, fields.get("DltTemplateId")))
        await self.outbox.mark_all_sent(sent)
        if sent:
            # One line for the group (a line per SMS cost a sixth of the worker's time).
            done = ", ".join(f"{s.row_id} as {s.exotel_sid}" for s in sent)
            log.info("outbox sent %d: %s", len(sent), done)
        for _ in sent:
            self._count("sent")

    async def _post(self, fields: dict[str, str]) -> SendResult | ExotelError:
        try:
            return await self.client.send_prepared(fields)
        except ExotelError as error:
            return error
        except Exception as error:  # a fault of ours mid-send: it may have gone out
            log.exception("outbox: unexpected error while sending")
            return Ambiguous(0, f"unexpected error while sending: {type(error).__name__}")

    async def _not_sent(self, row: OutboxRow, error: ExotelError) -> None:
        if error.is_ambiguous:
            wait = time.time() + self.unknown_wait
            if await self.outbox.mark_unknown(row.id, str(error), wait):
                log.warning(
                    "outbox %d may have been sent: %s; awaiting its callback", row.id, error
                )
                self._count("unknown")
            else:
                log.info("outbox %d: %s, but its status callback came first: sent", row.id, error)
                self._count("sent")
        elif error.is_retryable and row.attempts < MAX_ATTEMPTS:
            delay = min(300.0, 2.0**row.attempts)
            await self.outbox.mark_retry(row.id, str(error), time.time() + delay)
            self._count("retry")
            log.warning("outbox %d: %s; again in %.0fs", row.id, error, delay)
        else:
            await self.outbox.mark_failed(row.id, str(error))
            log.error("outbox %d failed: %s", row.id, error)
            self._count("failed")

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.sent(result)

    def _database_error(self) -> None:
        if self.metrics is not None:
            self.metrics.database_error("outbox")


def client_from_settings(
    exotel: ExotelSettings, *, dlt_mode: str = "auto", registry: TemplateRegistry | None = None
) -> Client:
    """A :class:`Client` for the ``[exotel]`` settings (which must be configured)."""
    if exotel.account_sid is None or exotel.api_key is None or exotel.api_token is None:
        raise ValueError("[exotel] needs account_sid, api_key and api_token")
    return Client(
        exotel.account_sid,
        exotel.api_key,
        exotel.api_token.get_secret_value(),
        base_url=exotel.api_url,
        sender=exotel.sender,
        dlt_entity_id=exotel.dlt_entity_id,
        sms_type=exotel.sms_type,
        registry=registry,
        dlt_mode=dlt_mode,
        timeout=exotel.timeout_seconds,
    )


def status_callback_url(exotel: ExotelSettings, webhook_token: SecretStr | None) -> str | None:
    """Where Exotel posts delivery status: ``<public_url>/exotel/status[/<token>]``."""
    if not exotel.public_url:
        return None
    url = str(exotel.public_url).rstrip("/") + "/exotel/status"
    return url + "/" + webhook_token.get_secret_value() if webhook_token is not None else url


def worker_from_settings(
    exotel: ExotelSettings,
    outbox: Outbox,
    *,
    webhook_token: SecretStr | None = None,
    dlt_mode: str = "auto",
    registry: TemplateRegistry | None = None,
    metrics: Metrics | None = None,
) -> OutboxWorker:
    """The outbox worker for the ``[exotel]`` settings (which must be configured);
    ``webhook_token`` is the token of the status callback URL."""
    return OutboxWorker(
        outbox,
        client_from_settings(exotel, dlt_mode=dlt_mode, registry=registry),
        signing_key=exotel.signing_key(),
        status_callback=status_callback_url(exotel, webhook_token),
        unknown_wait=exotel.unknown_wait_seconds,
        resend_unknown=exotel.unknown_policy == "resend",
        metrics=metrics,
        reconcile_after=exotel.reconcile_after_seconds,
        reconcile_per_minute=exotel.reconcile_per_minute,
        lease_seconds=exotel.send_lease_seconds,
        sends_at_once=exotel.sends_at_once,
    )
