"""Replies a person writes in the inbox: the live preview, and the send through the outbox.

Every check a rule's reply passes is made before a hand-written one is stored: the SMS parts,
the DLT template (the closest one and where the text departs from it, with the text to
register), the customer's opt-out. What passes is queued in the outbox with its template id
and its author, and sent once through Exotel's send API by the server's outbox worker, with a
status callback; the thread shows its status as it changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from exosms.gate import DltGate
from exosms.numbers import normalise
from exosms.segments import segment
from exosms.settings_sections import ExotelSettings
from exosms.store.inbox import InboxQueries
from exosms.store.outbox import Outbox

# What a registration would make a variable of: numbers (amounts, dates, ids) and links.
_VARIABLE = re.compile(r"https?://\S+|\d(?:[\d,.:/-]*\d)?")


def what_to_register(text: str) -> str:
    """A template to register for ``text``: its numbers and links made ``{#var#}``.

    A starting point for the DLT portal, not a promise: the portal's own rules (brand name,
    at most a few variables, 30% fixed text) still apply."""
    return _VARIABLE.sub("{#var#}", text)


@dataclass(frozen=True, slots=True)
class Preview:
    """What would happen to one hand-written reply, as the compose box shows it."""

    chars: int
    encoding: str
    parts: int
    max_parts: int
    dlt_mode: str  # the mode in force: enforce, warn or off
    template_id: str | None  # the template it matches
    dlt_reason: str  # why it matches none ("" when it matches or the check is off)
    closest_id: str | None
    closest_content: str | None
    register: str | None  # what to register when it matches none
    held: str | None  # why it cannot be sent; None when it can

    @property
    def sendable(self) -> bool:
        """Whether the reply would be queued."""
        return self.held is None

    def as_dict(self) -> dict[str, Any]:
        """The preview as the page's script reads it."""
        return {**asdict(self), "sendable": self.sendable}


@dataclass(frozen=True, slots=True)
class Sent:
    """A reply queued: its outbox row, or why it was not."""

    row_id: int | None
    preview: Preview


class Composer:
    """Checks and queues the replies people write in the inbox."""

    def __init__(
        self,
        gate: DltGate,
        outbox: Outbox,
        queries: InboxQueries,
        exotel: ExotelSettings,
        wake: Callable[[], None],
        *,
        max_body_chars: int = 1600,
    ) -> None:
        """``gate``: the server's own (its templates reload with it); ``wake``: tells the
        outbox worker a row is waiting."""
        self.gate = gate
        self.outbox = outbox
        self.queries = queries
        self.exotel = exotel
        self.wake = wake
        self.max_body_chars = max_body_chars

    @property
    def not_configured(self) -> str | None:
        """Why replying from the inbox is off, with what to set; ``None`` when it is on."""
        missing = [
            name
            for name in ("account_sid", "api_key", "api_token", "sender")
            if not getattr(self.exotel, name)
        ]
        if not missing:
            return None
        return (
            "Replying from the inbox sends through Exotel's API: set "
            + ", ".join(f"[exotel] {name}" for name in missing)
            + " (or "
            + ", ".join(f"EXOSMS_EXOTEL__{name.upper()}" for name in missing)
            + ") and restart."
        )

    def templates(self) -> list[dict[str, Any]]:
        """The approved templates for the picker: id, name, content and each slot's kind."""
        found = []
        for template in self.gate.registry:
            if not template.is_approved:
                continue
            compiled = self.gate.registry.get(template.template_id)
            slots = [slot.kind for slot in compiled.slots] if compiled else []
            found.append(
                {
                    "id": template.template_id,
                    "name": template.name or template.template_id,
                    "content": template.content,
                    "slots": slots,
                }
            )
        return sorted(found, key=lambda t: (t["name"].casefold(), t["id"]))

    async def preview(self, to: str, recipient: str, body: str) -> Preview:
        """What sending ``body`` to ``to`` (who wrote to ``recipient``) would do."""
        parts = segment(body)
        mode = self.gate.effective_mode
        verdict = self.gate.verdict(body) if body else None
        matched = verdict is not None and verdict.matched
        closest = None
        if verdict is not None and not matched and verdict.closest_id:
            closest = self.gate.registry.get(verdict.closest_id)
        held = None
        if not body.strip():
            held = "Write a reply first."
        elif len(body) > self.max_body_chars:
            held = f"The reply is longer than {self.max_body_chars} characters."
        elif parts.count > self.gate.max_parts:
            held = (
                f"The reply needs {parts.count} SMS parts; at most {self.gate.max_parts} are"
                " sent ([reply] max_reply_parts)."
            )
        elif mode == "enforce" and verdict is not None and not matched:
            held = f"DLT: {verdict.reason}. Operators drop an SMS that matches no template."
        elif await self.queries.is_opted_out(normalise(to), normalise(recipient)):
            held = (
                "The customer opted out (STOP): nothing is sent to them until they send START"
                " or an admin removes the opt-out."
            )
        elif (reason := self.not_configured) is not None:
            held = reason
        return Preview(
            chars=len(body),
            encoding=parts.encoding,
            parts=parts.count,
            max_parts=self.gate.max_parts,
            dlt_mode=mode,
            template_id=verdict.template_id if verdict is not None else None,
            dlt_reason=verdict.reason if verdict is not None else "",
            closest_id=verdict.closest_id if verdict is not None else None,
            closest_content=closest.template.content if closest else None,
            register=what_to_register(body)
            if body and verdict is not None and not matched
            else None,
            held=held,
        )

    async def send(self, to: str, recipient: str, body: str, author: str) -> Sent:
        """Queue ``body`` for ``to`` when it passes every check; the worker sends it."""
        checked = await self.preview(to, recipient, body)
        if not checked.sendable:
            return Sent(None, checked)
        row_id = await self.outbox.enqueue(
            normalise(to),
            body,
            template_id=checked.template_id,
            parts=checked.parts,
            author=author,
        )
        self.wake()
        return Sent(row_id, checked)
