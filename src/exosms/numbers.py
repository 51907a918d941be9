"""Phone number normalisation: every Indian form of a number becomes one E.164 string."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "IN"
# Characters a dialled number may carry besides digits. Anything else (letters above all)
# means the sender is not a phone number: phonenumbers would turn letters into digits.
_NUMBER_SHAPE = re.compile(r"^\+?[0-9 ()\-.]{3,20}$")
# Indian mobile numbers in the forms Exotel sends: phonenumbers treats every [6-9]XXXXXXXXX as
# a valid mobile number, so this shortcut gives its exact answer without its ~50 us parse
# (tests/test_numbers.py checks the two agree).
_INDIAN_MOBILE = re.compile(r"^(?:\+91|91|0)?([6-9][0-9]{9})$")


@lru_cache(maxsize=65536)
def normalise(raw: str, region: str = DEFAULT_REGION) -> str:
    """Return ``raw`` as E.164 when it is a valid phone number, else ``raw`` stripped.

    ``9052161119``, ``09052161119``, ``919052161119``, ``+919052161119`` and
    `` 919052161119`` (a ``+`` that arrived unencoded in a query string) all give
    ``+919052161119``. Short codes (``56070``) and alphanumeric senders (``VM-ACMEIN``)
    come back as they are.
    """
    text = raw.strip()
    mobile = _INDIAN_MOBILE.match(text)
    if mobile is not None and region == DEFAULT_REGION:
        return "+91" + mobile.group(1)
    if not _NUMBER_SHAPE.match(text):
        return text
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_valid_number(number):
        return text
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def is_phone_number(value: str) -> bool:
    """True for a normalised E.164 number, false for short codes and alphanumeric senders."""
    return value.startswith("+") and value[1:].isdigit()
