from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exosms.numbers import is_phone_number, normalise


@pytest.mark.parametrize(
    "raw", ["9052161119", "09052161119", "+919052161119", "919052161119", " 919052161119"]
)
def test_indian_forms_become_e164(raw: str) -> None:
    assert normalise(raw) == "+919052161119"


@pytest.mark.parametrize("raw", ["56070", "VM-ACMEIN", "0XXXXXX4890", "", "JD-HDFCBK"])
def test_short_codes_and_alphanumeric_senders_are_kept(raw: str) -> None:
    assert normalise(raw) == raw


def test_letters_never_become_digits() -> None:
    assert normalise("0XXXXXX4890") == "0XXXXXX4890"
    assert not is_phone_number("0XXXXXX4890")


def test_foreign_numbers_in_e164_stay_foreign() -> None:
    assert normalise("+1 650 253 0000") == "+16502530000"
    assert is_phone_number("+16502530000")


# No deadline: phonenumbers loads its metadata on first use (0.75 s on a loaded machine),
# and this test is about agreement, not speed (bench/ times the hot path).
@settings(max_examples=500, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=9, max_size=9),
    first=st.sampled_from("0123456789"),
    prefix=st.sampled_from(["", "0", "91", "+91", " 91", "+9", "9"]),
)
def test_the_mobile_shortcut_agrees_with_phonenumbers(digits: str, first: str, prefix: str) -> None:
    import phonenumbers

    raw = prefix + first + digits
    text = raw.strip()
    try:
        parsed = phonenumbers.parse(text, "IN")
        valid = phonenumbers.is_valid_number(parsed)
    except phonenumbers.NumberParseException:
        valid = False
    expected = (
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if valid else text
    )
    assert normalise.__wrapped__(raw) == expected
