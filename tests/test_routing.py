"""The Router, tested as conversations: `sender > message` and the rule that answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exosms import IncomingSms, Match, Router
from exosms.routing import split_keyword


def incoming(body: str) -> IncomingSms:
    return IncomingSms("sid", "+919052161119", "56070", body, datetime.now(UTC))


def build() -> Router:
    router = Router()

    @router.regex(r"^(?P<n>\d{6})$", name="otp")
    def otp(sms: IncomingSms, match: Match) -> str:
        return "otp"

    @router.keyword("ORDER", "ORD")
    def order(sms: IncomingSms, match: Match) -> str:
        return "order"

    @router.keyword("स्थिति")
    def status_hi(sms: IncomingSms, match: Match) -> str:
        return "status"

    @router.regex(r"order (?P<id>\d+)", name="late_regex")
    def late(sms: IncomingSms, match: Match) -> str:
        return "never before ORDER"

    @router.default
    def fallback(sms: IncomingSms, match: Match) -> None:
        return None

    return router


@pytest.mark.parametrize(
    "body, rule, keyword, rest",
    [
        ("ORDER 12", "order", "ORDER", "12"),
        ("order 12", "order", "ORDER", "12"),
        ("  Ord: 12", "order", "ORDER", "12"),
        ("ORDER,12", "order", "ORDER", "12"),
        ("ORDER; 12 and more", "order", "ORDER", "12 and more"),
        ("ORDER.", "order", "ORDER", ""),
        ("ORDER", "order", "ORDER", ""),
        ("ORDERS 12", "fallback", None, "ORDERS 12"),
        ("स्थिति 45", "status_hi", "स्थिति", "45"),
        ("123456", "otp", None, "123456"),
        ("", "fallback", None, ""),
    ],
)
def test_first_matching_rule_wins(body: str, rule: str, keyword: str | None, rest: str) -> None:
    found = build().route(incoming(body))
    assert found is not None
    chosen, match = found
    assert chosen.name == rule
    assert match.keyword == keyword
    assert match.rest == rest


def test_regex_groups_are_passed_on() -> None:
    found = build().route(incoming("123456"))
    assert found is not None
    assert found[1].groups == {"n": "123456"}


def test_registration_order_decides_between_regex_and_keyword() -> None:
    router = Router()

    @router.regex(r"stop", name="early_regex")
    def early(sms: IncomingSms, match: Match) -> str:
        return "regex"

    @router.keyword("STOP")
    def stop(sms: IncomingSms, match: Match) -> str:
        return "keyword"

    found = router.route(incoming("STOP"))
    assert found is not None and found[0].name == "early_regex"


def test_no_rule_and_no_default_means_no_route() -> None:
    router = Router()

    @router.keyword("HI")
    def hi(sms: IncomingSms, match: Match) -> str:
        return "hello"

    assert router.route(incoming("bye")) is None


def test_a_keyword_must_be_one_word() -> None:
    router = Router()
    with pytest.raises(ValueError, match="one word"):
        router.keyword("TWO WORDS")
    with pytest.raises(ValueError, match="at least one"):
        router.keyword()


def test_an_earlier_keyword_keeps_its_word() -> None:
    router = Router()

    @router.keyword("INFO")
    def first(sms: IncomingSms, match: Match) -> str:
        return "first"

    @router.keyword("INFO", "DETAILS")
    def second(sms: IncomingSms, match: Match) -> str:
        return "second"

    assert router.route(incoming("info"))[0].name == "first"  # type: ignore[index]
    assert router.route(incoming("details"))[0].name == "second"  # type: ignore[index]


def test_split_keyword() -> None:
    assert split_keyword("  Hello:  world ") == ("hello", "world ")
    assert split_keyword("\nECHO\nline two") == ("echo", "line two")
