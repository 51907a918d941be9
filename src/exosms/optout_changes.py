"""Opt-outs changed by a person (``exosms optouts``, the inbox's opt-outs page): the numbers
checked, and a sentence that says exactly what changed and what is still in force.

An opt-out is from every Exotel number (``*``: STOP, or added without one) or from one. To
opt a customer back in without naming a number removes every opt-out of theirs; naming one
removes only that one, and says which others still hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from exosms.numbers import is_phone_number, normalise
from exosms.store.base import Store

EVERYWHERE = "*"  # the recipient of an opt-out from every Exotel number


class BadNumber(ValueError):
    """A number that cannot be opted out or in; the message says why, in one line."""


def customer_number(value: str) -> str:
    """A customer's number in its stored form (E.164); :class:`BadNumber` for anything else."""
    number = normalise(value)
    if not is_phone_number(number):
        raise BadNumber(f"{value!r} is not a phone number (e.g. 9052161119 or +919052161119)")
    return number


def exotel_number(value: str | None) -> str:
    """An Exotel number (an ExoPhone, or a short code) in its stored form; ``*`` for none."""
    if value is None or not value.strip() or value.strip() == EVERYWHERE:
        return EVERYWHERE
    number = normalise(value)
    if not (is_phone_number(number) or (number.isdigit() and 3 <= len(number) <= 8)):
        raise BadNumber(
            f"{value!r} is not an Exotel number (an ExoPhone such as 08041000000, or a short"
            " code such as 56070)"
        )
    return number


def place(recipient: str) -> str:
    """Where an opt-out holds, in words."""
    return "every Exotel number" if recipient == EVERYWHERE else recipient


@dataclass(frozen=True, slots=True)
class Change:
    """What a person's opt-out or opt-in did."""

    changed: bool
    said: str  # one sentence: what changed, and what still holds


async def opt_out(store: Store, sender: str, recipient: str, source: str) -> Change:
    """Opt ``sender`` (stored form) out from ``recipient`` (``*``: every number)."""
    existing = {row.recipient for row in await store.list_optouts() if row.sender == sender}
    if EVERYWHERE in existing:
        return Change(False, f"{sender} was already opted out from every Exotel number")
    if recipient in existing:
        return Change(False, f"{sender} was already opted out from {recipient}")
    await store.set_optout(sender, recipient, True, source)
    return Change(
        True, f"{sender} opted out from {place(recipient)}: nothing more is sent to them there"
    )


async def opt_in(store: Store, sender: str, only: str | None = None) -> Change:
    """Remove ``sender``'s opt-outs: every one, or only the one from ``only``."""
    existing = sorted({row.recipient for row in await store.list_optouts() if row.sender == sender})
    chosen = [r for r in existing if only is None or r == only]
    for recipient in chosen:
        await store.set_optout(sender, recipient, False)
    left = [r for r in existing if r not in chosen]
    if not chosen:
        said = f"{sender} was not opted out{f' from {place(only)}' if only else ''}"
    else:
        said = f"{sender}: removed the opt-out from " + ", ".join(place(r) for r in chosen)
    if left:
        said += "; still opted out from " + ", ".join(place(r) for r in left)
    elif chosen:
        said += "; they get replies again"
    return Change(bool(chosen), said)
