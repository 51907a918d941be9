"""Forms as the standard library encodes and decodes them, byte for byte and field for
field, on generated input: the webhook, the status callbacks and the send API rely on it."""

from __future__ import annotations

import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from exosms.exotel import forms

FIELDS = st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=8)


@settings(max_examples=300, deadline=None)
@given(FIELDS)
def test_encode_is_urlencode_byte_for_byte(data: dict[str, str]) -> None:
    assert forms.encode(data) == urllib.parse.urlencode(data).encode()


@settings(max_examples=300, deadline=None)
@given(FIELDS, st.sampled_from(["", "&", "&&"]))
def test_decode_reads_what_urlencode_wrote(data: dict[str, str], padding: str) -> None:
    raw = padding.encode() + urllib.parse.urlencode(data).encode() + padding.encode()
    assert forms.decode(raw) == data


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab=&+%2F41é ~\x00"), max_size=40))
def test_decode_is_parse_qsl_on_any_text(text: str) -> None:
    expected = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    assert forms.decode(text.encode()) == expected


def test_what_each_side_quotes() -> None:
    fields = {"To": "+919876543210", "Body": "नमस्ते & = ~ a+b%", "From": "ACMEIN", "X": ""}
    assert forms.encode(fields).startswith(b"To=%2B919876543210&Body=%E0%A4%A8")
    assert forms.decode(b"Body=a+b%2Bc&Bad=%ZZ&Raw=\xff&Body=last") == {
        "Body": "last",
        "Bad": "%ZZ",
        "Raw": "\ufffd",
    }
