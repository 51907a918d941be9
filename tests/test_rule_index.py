"""The regex index finds exactly the rule that trying every rule in order would find."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exosms import IncomingSms, Match, Router
from exosms.routing import Rule
from exosms.rule_index import fold, required_literals


async def _handler(sms: IncomingSms, match: Match) -> str:
    return "x"


def _sms(body: str, to: str = "56070") -> IncomingSms:
    return IncomingSms("s", "+919052161119", to, body, datetime.now(UTC))


def _tried_in_order(router: Router, sms: IncomingSms) -> Rule | None:
    """The first regex or catch-all rule that matches, trying each one (the old way)."""
    for rule in router.rules:
        if not rule.scope.accepts(sms, None):
            continue
        if rule.pattern is None or rule.pattern.match(sms.body):
            return rule
    return None


@pytest.mark.parametrize(
    ("pattern", "flags", "literals"),
    [
        (r"order\s+status\s+(\d+)", re.I, ("order", "status")),
        (r"(?P<amount>\d+)\s+rupees?\s+paid", re.I, ("rupee", "paid")),
        (r".*\btrack(ing)?\s+parcel\s+12\b", re.I, ("track", "parcel", "12")),
        (r"a(bc)d", 0, ("abcd",)),
        (r"(?i:ab)cd|x", 0, ()),  # an alternation at the top: nothing is required
        (r"(?-i:Refund)\s+NOW", re.I, ("now",)),  # a scoped flag: its group is left out
        (r"Café\s+OPEN", re.I, ("caf", "open")),  # folded: only ASCII letters are trusted
        (r"Café\s+OPEN", 0, ("Café", "OPEN")),
        (r"(?i)hello there", 0, ("hello there",)),
        (r"x{2,}yz", re.I, ("yz",)),
    ],
)
def test_the_literals_a_pattern_needs(pattern: str, flags: int, literals: tuple[str, ...]) -> None:
    assert required_literals(re.compile(pattern, flags))[0] == literals


@pytest.mark.parametrize(
    ("pattern", "body"),
    [
        ("kit", "\u212aıt"),  # Kelvin sign and dotless i match k and i under IGNORECASE
        ("miss", "MİSſ"),  # dotted capital I and long s too
        ("STOP now", "stop NOW"),
    ],
)
def test_case_folding_never_hides_a_match(pattern: str, body: str) -> None:
    compiled = re.compile(pattern, re.I)
    assert compiled.match(body) is not None
    assert all(lit in fold(body) for lit in required_literals(compiled)[0])
    router = Router()
    router.regex(pattern, name="it")(_handler)
    found = router.route(_sms(body))
    assert found is not None and found[0].name == "it"


WORDS = ["order", "ORDER", "status", "paid", "to", "12", "499", "kit", "ſ", "ı", "İ", "café"]
WORDS += ["CAFÉ", "ß", "ẞ", "Σ", "ς", "ﬅ", "ǅ", "\u212a"]  # what case folding gets wrong
SYNTAX = [r"\s+", r"\s*", r"\d+", r".*", r"[a-z]{2}", r"(ab)?", r"(x|12)", r"\b", "s?"]
SCOPED = [r"(?-i:Paid)", r"(?i:ORDER)"]
PIECES = st.sampled_from([*(re.escape(w) for w in WORDS), *SYNTAX, *SCOPED])
# One named group at most (a name may not repeat in a pattern), anywhere.
PATTERNS = st.tuples(st.lists(PIECES, min_size=1, max_size=6), st.integers(0, 7)).map(
    lambda p: "".join(p[0][: p[1]]) + r"(?P<n>\d+)" * (p[1] < 3) + "".join(p[0][p[1] :])
)
BODIES = st.lists(st.sampled_from([*WORDS, " ", "  ", "K", "x", "ab", "Paid"]), max_size=12).map(
    "".join
)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(
        st.tuples(PATTERNS, st.booleans(), st.sampled_from(["regex", "regex", "catch_all"])),
        min_size=1,
        max_size=12,
    ),
    scoped=st.sets(st.integers(0, 11), max_size=3),
    bodies=st.lists(BODIES, min_size=1, max_size=5),
)
def test_the_index_finds_the_first_rule_in_order(
    rules: list[tuple[str, bool, str]], scoped: set[int], bodies: list[str]
) -> None:
    router = Router()
    for n, (pattern, ignore_case, kind) in enumerate(rules):
        to = ["56071"] if n in scoped else None  # some rules only for another number
        if kind == "catch_all":
            router.catch_all(name=f"r{n}", to=to)(_handler)
        else:
            flags = re.IGNORECASE if ignore_case else 0
            router.regex(pattern, flags=flags, name=f"r{n}", to=to)(_handler)
    for body in bodies:
        sms = _sms(body)
        expected = _tried_in_order(router, sms)
        found = router.route(sms)
        assert (found[0].name if found else None) == (expected.name if expected else None), body
        if found is not None and found[0].pattern is not None:
            groups = found[0].pattern.match(body)
            assert groups is not None
            assert found[1].groups == {k: v for k, v in groups.groupdict().items() if v}


def test_rules_added_after_a_route_are_indexed_too() -> None:
    router = Router()
    router.regex(r"refund\s+(\d+)", name="refund")(_handler)
    assert router.route(_sms("track 12")) is None
    router.regex(r"track\s+(\d+)", name="track")(_handler)
    found = router.route(_sms("track 12"))
    assert found is not None and found[0].name == "track"
