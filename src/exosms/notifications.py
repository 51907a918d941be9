"""Messages that need a person, sent to people through Apprise (``[notify]``).

Every ``batch_seconds`` the server looks at the messages answered since its last look:
those that got no reply (a guard's silence aside) and those a rule marked ``notify = true``
answered. It sends one notification per person: to whoever the conversation is assigned to
when ``[notify.people]`` has their Apprise URL, else to ``[notify] urls``; each line is the
customer's number, their words and a link to the conversation.

The batch is taken with a compare-and-set on ``notify_state`` (migration 0018), so that two
server processes never notify of one message twice. A batch whose notification could not be
sent is given back, and tried again at the next look (at least once); a batch that cannot be
given back because another process moved on is reported in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.settings_sections import NotifySettings
from exosms.store.base import StoreUnavailable
from exosms.store.textsql import execute, fetch_all

log = logging.getLogger("exosms.notify")

BATCH = 500  # messages looked at per look; the rest at the next one
# Outcomes where the customer heard nothing and a person may have to answer. A guard's
# silence (opted out, rate limited, a loop) is on purpose: no one needs to act on it.
UNANSWERED = (
    "no_reply",
    "fallback_timeout",
    "fallback_error",
    "handler_not_started",
    "dlt_refused",
    "too_long",
)


class MissingApprise(RuntimeError):
    """``[notify]`` is set but the ``apprise`` package is not installed."""


class Sender(Protocol):
    """Sends one notification to some Apprise URLs; True when it was sent."""

    def __call__(self, urls: Sequence[str], title: str, body: str) -> bool: ...


def apprise_sender() -> Sender:
    """The sender through the Apprise package (``pip install 'exosms[notify]'``)."""
    try:
        import apprise
    except ImportError:
        raise MissingApprise(
            "[notify] is set, but Apprise is not installed: pip install 'exosms[notify]'"
        ) from None

    def send(urls: Sequence[str], title: str, body: str) -> bool:
        notifier = apprise.Apprise()
        for url in urls:
            notifier.add(url)
        return bool(notifier.notify(title=title, body=body))

    return send


@dataclass(frozen=True, slots=True)
class Waiting:
    """One message that needs a person."""

    id: int
    answered_at: float
    sender: str
    body: str
    rule: str | None
    outcome: str | None
    assigned_to: str | None


class Notifier:
    """Looks for messages that need a person and notifies them, in batches."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: NotifySettings,
        *,
        public_url: str | None,
        notify_rules: Callable[[], frozenset[str]],
        send: Sender,
    ) -> None:
        """``notify_rules``: the names of the rules marked ``notify = true`` (read at each
        look: rules reload while serving); ``public_url``: where the links point."""
        self.engine = engine
        self.settings = settings
        self.public_url = (public_url or "").rstrip("/")
        self.notify_rules = notify_rules
        self.send = send
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether anyone is to be notified."""
        return bool(self.settings.urls or self.settings.people)

    def start(self) -> None:
        """Look every ``batch_seconds`` (on the running loop)."""
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        """Stop looking (a batch being sent is given back by the database's state)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.batch_seconds)
            try:
                while await self.once() >= BATCH:  # more waiting: go on at once
                    pass
            except StoreUnavailable as error:
                log.warning("notify: database unavailable: %s", error)
            except Exception:  # a bug must not end notifications: report it and go on
                log.exception("notify: a look failed")

    async def once(self) -> int:
        """One look: the messages answered since the last, notified; how many were read."""
        state = await fetch_all(
            self.engine, "SELECT answered_at, message_id FROM notify_state WHERE id = 1"
        )
        if not state:
            return 0
        since_at, since_id = float(state[0][0]), int(state[0][1])
        rows = await fetch_all(
            self.engine,
            "SELECT m.id, m.answered_at, m.sender, m.body, m.rule, m.outcome, c.assigned_to"
            " FROM messages m LEFT JOIN conversations c ON c.sender = m.sender"
            " WHERE m.state = 'done' AND (m.answered_at > :at"
            " OR (m.answered_at = :at AND m.id > :id))"
            " ORDER BY m.answered_at, m.id LIMIT :limit",
            at=since_at,
            id=since_id,
            limit=BATCH,
        )
        if not rows:
            return 0
        found = [Waiting(*row) for row in rows]
        last = found[-1]
        if not await self._move(since_at, since_id, last.answered_at, last.id):
            return 0  # another process took this batch
        rules = self.notify_rules()
        wanted = [w for w in found if self._wanted(w, rules)]
        # Not sent: give the batch back, to be tried at the next look.
        if (
            wanted
            and not await self._notify(wanted)
            and not await self._move(last.answered_at, last.id, since_at, since_id)
        ):
            log.error("notify: %d messages not notified (another process moved on)", len(wanted))
        return len(found)

    def _wanted(self, waiting: Waiting, rules: frozenset[str]) -> bool:
        if waiting.rule is not None and waiting.rule.casefold() in rules:
            return True
        return self.settings.no_reply and waiting.outcome in UNANSWERED

    async def _move(self, from_at: float, from_id: int, to_at: float, to_id: int) -> bool:
        moved = await execute(
            self.engine,
            "UPDATE notify_state SET answered_at = :to_at, message_id = :to_id"
            " WHERE id = 1 AND answered_at = :from_at AND message_id = :from_id",
            to_at=to_at,
            to_id=to_id,
            from_at=from_at,
            from_id=from_id,
        )
        return moved == 1

    async def _notify(self, wanted: list[Waiting]) -> bool:
        people = self.settings.people
        groups: dict[str | None, list[Waiting]] = {}
        for waiting in wanted:
            person = waiting.assigned_to if waiting.assigned_to in people else None
            groups.setdefault(person, []).append(waiting)
        ok = True
        for person, items in groups.items():
            if person is not None:
                urls = [people[person].get_secret_value()]
            else:
                urls = [url.get_secret_value() for url in self.settings.urls]
            if not urls:
                continue  # assigned to nobody with a URL, and no list: no one to tell
            title, body = self.message(items)
            sent = await asyncio.to_thread(self.send, urls, title, body)
            # Counts only: customers' numbers and the URLs' secrets never reach a log line.
            if sent:
                log.info("notify: %d messages sent to %s", len(items), person or "the list")
            else:
                log.warning(
                    "notify: could not notify %s of %d messages", person or "the list", len(items)
                )
                ok = False
        return ok

    def message(self, items: Sequence[Waiting]) -> tuple[str, str]:
        """The title and body of one notification."""
        count = len(items)
        title = f"exosms: {count} messages need a person"
        if count == 1:
            title = "exosms: a message needs a person"
        lines = []
        for item in items:
            words = " ".join(item.body.split())
            words = words if len(words) <= 120 else words[:119] + "…"
            line = f"{item.sender}: {words}"
            if self.public_url:
                line += f"\n{self.public_url}/inbox/c/{quote(item.sender, safe='')}"
            lines.append(line)
        return title, "\n\n".join(lines)
