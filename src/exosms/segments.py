"""SMS encoding and segmentation (3GPP TS 23.038), as an SMSC would split a message.

GSM-7 when every character is in the GSM 03.38 basic alphabet or its extension table
(extension characters cost two septets), UCS-2 otherwise. One SMS holds 160 septets or 70
UTF-16 units; a concatenated part holds 153 or 67, because its header takes the rest.
A part never ends inside an escape pair or a surrogate pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["GSM7", "UCS2", "Segments", "is_gsm7", "segment"]  # public: see exosms/__init__.py


GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")  # each is ESC + one septet: two septets

GSM7 = "GSM-7"
UCS2 = "UCS-2"
SINGLE_LIMIT = {GSM7: 160, UCS2: 70}  # septets or UTF-16 units in a lone SMS
PART_LIMIT = {GSM7: 153, UCS2: 67}  # in each part of a concatenated SMS (UDH takes 6 bytes)


@dataclass(frozen=True, slots=True)
class Segments:
    """How a text travels as SMS: its encoding, its length in units, and its parts."""

    encoding: str
    units: int
    parts: tuple[str, ...]

    @property
    def count(self) -> int:
        """How many SMS parts the text takes."""
        return len(self.parts)


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` has a GSM-7 code (basic or extension)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _cost(ch: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1  # outside the BMP: a surrogate pair


@lru_cache(maxsize=4096)
def segment(text: str) -> Segments:
    """Encoding, units and parts of ``text``. An empty text is one empty SMS."""
    encoding = GSM7 if is_gsm7(text) else UCS2
    costs = [_cost(ch, encoding) for ch in text]
    units = sum(costs)
    if units <= SINGLE_LIMIT[encoding]:
        return Segments(encoding, units, (text,))
    limit = PART_LIMIT[encoding]
    parts: list[str] = []
    start = used = 0
    for index, cost in enumerate(costs):
        if used + cost > limit:  # the pair does not fit: it opens the next part
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return Segments(encoding, units, tuple(parts))
