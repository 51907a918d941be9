"""The outbox worker: sends stored SMS through Exotel's API, once each, and records why not.

Every outgoing SMS is stored first (``Store.outbox``); this worker leases due rows, sends
them, and marks them sent (with Exotel's SmsSid) or failed (with the reason). Errors Exotel
may recover from (429, 503, no answer) are retried later with backoff; others are final. It
stops cleanly on shutdown: a row it was sending keeps its lease and is sent again after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from exosms.exotel.client import Client, DltRefused, ExotelError, OutgoingSms
from exosms.store.base import Store, StoreUnavailable
from exosms.store.outbox import OutboxRow

log = logging.getLogger("exosms.outbox")

LEASE_SECONDS = 60.0  # a row being sent is not taken by another worker for this long
MAX_ATTEMPTS = 8
BATCH = 50


class OutboxWorker:
    """Runs beside the server: ``start()`` in the lifespan, ``stop()`` at shutdown."""

    def __init__(
        self,
        store: Store,
        client: Client,
        *,
        status_callback: str | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.client = client
        self.status_callback = status_callback
        self.poll_seconds = poll_seconds
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
        while True:
            try:
                rows = await self.store.outbox.lease_due(BATCH, LEASE_SECONDS)
            except StoreUnavailable as error:
                log.warning("outbox: database unavailable: %s", error)
                rows = []
            for row in rows:
                await self.send_row(row)
            if len(rows) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                self._wake.clear()

    async def send_row(self, row: OutboxRow) -> None:
        sms = OutgoingSms(
            to=row.to_number,
            body=row.body,
            sender=row.sender,
            template_id=row.template_id,
            status_callback=self.status_callback,
            custom_field=f"exosms-{row.id}",
        )
        try:
            fields = self.client.prepare(sms)
            result = await self.client.send(
                sms.to,
                sms.body,
                sender=sms.sender,
                template_id=fields.get("DltTemplateId"),
                status_callback=sms.status_callback,
                custom_field=sms.custom_field,
            )
        except DltRefused as error:
            await self.store.outbox.mark_failed(row.id, str(error))
            log.warning("outbox %d not sent: %s", row.id, error)
        except ExotelError as error:
            if error.is_retryable and row.attempts < MAX_ATTEMPTS:
                delay = min(300.0, 2.0**row.attempts)
                await self.store.outbox.mark_retry(row.id, str(error), time.time() + delay)
                log.warning("outbox %d: %s; again in %.0fs", row.id, error, delay)
            else:
                await self.store.outbox.mark_failed(row.id, str(error))
                log.error("outbox %d failed: %s", row.id, error)
        else:
            await self.store.outbox.mark_sent(row.id, result.sid, fields.get("DltTemplateId"))
            log.info("outbox %d sent as %s", row.id, result.sid)
