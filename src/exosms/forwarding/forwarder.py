"""The forwarder: hands new events to destinations and delivers them, at least once.

Each server process runs one. Every ``poll_seconds`` it fans new events out (once, whichever
process does it), then each destination's own task leases its due rows (runs from each
sender's oldest undelivered event), delivers every sender's run in order, senders in
parallel, and records what came of each. A failing destination backs off on its own rows
only: the others, and the reply path, do not wait for it. A row past ``max_attempts`` or
``max_age_seconds`` is dead-lettered with its last error (``exosms events replay`` sends it
again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from exosms.forwarding.destination import DeliveryFailed, Destination
from exosms.forwarding.envelope import build
from exosms.store.base import StoreUnavailable
from exosms.store.events import FAN_OUT_BATCH, EventStore, Failure, Lease, Route

log = logging.getLogger("exosms.forwarding")

BACKOFF_BASE = 0.5  # seconds before the second attempt; doubles each time
BACKOFF_CAP = 300.0  # the longest wait between attempts, Retry-After aside
IDLE_FAN_OUT = 5.0  # seconds between hand-outs when no destination is configured


def next_attempt(attempts: int, retry_after: float | None, now: float) -> float:
    """When to try again after ``attempts`` failed tries: exponential backoff with jitter
    (half to all of the delay), or later when the destination asked for it."""
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(0, attempts - 1))
    delay *= random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + delay


@dataclass(frozen=True, slots=True)
class Limits:
    """How the forwarder paces itself (``[forwarding]``)."""

    poll_seconds: float = 0.2
    max_attempts: int = 100
    max_age_seconds: float = 86_400.0
    batch: int = 200
    concurrency: int = 16
    lease_seconds: float = 60.0


class Forwarder:
    """Delivers events to ``destinations``, each filtered by its :class:`Route`."""

    def __init__(
        self,
        events: EventStore,
        destinations: Sequence[tuple[Destination, Route, float]],
        limits: Limits | None = None,
    ) -> None:
        """``destinations``: each with its route and its delivery timeout (seconds)."""
        self.events = events
        self.destinations = list(destinations)
        self.routes = [route for _, route, _ in destinations]
        self.limits = limits or Limits()
        self._tasks: list[asyncio.Task[None]] = []
        self._fanned = asyncio.Event()

    def start(self) -> None:
        """Start the fan-out and one task per destination (on the running loop)."""
        self._tasks = [asyncio.create_task(self._fan_out_forever())]
        for destination, _, timeout in self.destinations:
            self._tasks.append(asyncio.create_task(self._deliver_forever(destination, timeout)))

    async def stop(self) -> None:
        """Stop; rows being delivered stay leased until their lease runs out."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for destination, _, _ in self.destinations:
            await destination.aclose()

    async def _fan_out_forever(self) -> None:
        while True:
            try:
                while await self.events.fan_out(self.routes) >= FAN_OUT_BATCH:  # more waiting
                    self._fanned.set()
                self._fanned.set()
            except StoreUnavailable as error:
                log.warning("forwarding: database unavailable: %s", error)
            except Exception:  # a bug must not end forwarding: report it and go on
                log.exception("forwarding: fan-out failed")
            # With no destination, events are only marked handed out: no hurry.
            await asyncio.sleep(self.limits.poll_seconds if self.destinations else IDLE_FAN_OUT)

    async def _deliver_forever(self, destination: Destination, timeout: float) -> None:
        while True:
            try:
                done = await self.deliver_once(destination, timeout)
            except StoreUnavailable as error:
                log.warning("forwarding to %s: database unavailable: %s", destination.name, error)
                done = 0
            except Exception:  # a bug must not end forwarding: report it and go on
                log.exception("forwarding to %s failed", destination.name)
                done = 0
            if done < self.limits.batch:
                self._fanned.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._fanned.wait(), self.limits.poll_seconds)

    async def deliver_once(self, destination: Destination, timeout: float) -> int:
        """Lease one batch of ``destination``'s rows and deliver it; the rows taken."""
        limits = self.limits
        leases = await self.events.lease(destination.name, limits.batch, limits.lease_seconds)
        if not leases:
            return 0
        # A delivery starts only if it can end (``timeout``) before the lease runs out.
        deadline = time.monotonic() + limits.lease_seconds - 0.5 - timeout
        found = await self.events.load([lease.event for lease in leases])
        runs: dict[str, list[Lease]] = {}
        for lease in leases:
            runs.setdefault(lease.sender, []).append(lease)
        delivered: list[int] = []
        failed: list[Failure] = []
        released: list[int] = []
        slots = asyncio.Semaphore(limits.concurrency)

        async def run(rows: list[Lease]) -> None:
            async with slots:
                for index, lease in enumerate(rows):
                    event = found.get(lease.event)
                    if event is None:  # pruned meanwhile: nothing left to send
                        delivered.append(lease.id)
                        continue
                    if time.monotonic() > deadline:  # the lease would run out mid-delivery
                        released.extend(r.id for r in rows[index:])
                        return
                    try:
                        await destination.deliver(build(event))
                    except DeliveryFailed as error:
                        failed.append(self._failure(lease, str(error), error.retry_after))
                        released.extend(r.id for r in rows[index + 1 :])  # order: wait for it
                        log.warning(
                            "forwarding to %s: event %d not delivered (attempt %d): %s",
                            destination.name,
                            lease.event,
                            lease.attempts + 1,
                            error,
                        )
                        return
                    delivered.append(lease.id)

        await asyncio.gather(*(run(rows) for rows in runs.values()))
        await self.events.settle(delivered, failed, released)
        return len(leases)

    def _failure(self, lease: Lease, error: str, retry_after: float | None) -> Failure:
        now = time.time()
        attempts = lease.attempts + 1
        dead = attempts >= self.limits.max_attempts or (
            now - lease.created_at >= self.limits.max_age_seconds
        )
        if dead:
            log.error("forwarding: event %d dead-lettered after %d attempts", lease.event, attempts)
        return Failure(lease.id, error, next_attempt(attempts, retry_after, now), dead)
