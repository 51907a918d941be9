"""Segment counting against the published vectors in ../shared/vectors/segments.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exosms.segments import GSM7, PART_LIMIT, SINGLE_LIMIT, UCS2, segment

VECTORS = json.loads(
    (Path(__file__).resolve().parent / "data" / "segments.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vectors(case: dict[str, object]) -> None:
    result = segment(str(case["text"]))
    assert result.encoding == case["encoding"]
    assert result.units == case["units"]
    assert result.count == case["segments"]


def test_escape_pair_opens_the_next_part() -> None:
    result = segment("a" * 152 + "€" + "a" * 152)
    assert [len(p) for p in result.parts] == [152, 152, 1]  # € + 151 a = 153 septets
    assert result.parts[1].startswith("€")


@given(st.text(max_size=600))
def test_parts_rebuild_the_text_and_respect_the_limits(text: str) -> None:
    result = segment(text)
    assert "".join(result.parts) == text
    if result.count > 1:
        for part in result.parts:
            part_units = sum(
                (2 if ch in "\f^{}\\[]~|€" else 1)
                if result.encoding == GSM7
                else (2 if ord(ch) > 0xFFFF else 1)
                for ch in part
            )
            assert part_units <= PART_LIMIT[result.encoding]
    else:
        assert result.units <= SINGLE_LIMIT[result.encoding]


def test_one_non_gsm_character_makes_the_whole_message_ucs2() -> None:
    assert segment("Hello").encoding == GSM7
    assert segment("Hello ₹").encoding == UCS2
    assert segment("Hello `").encoding == UCS2
