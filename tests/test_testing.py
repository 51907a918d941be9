"""exosms.testing: conversation scripts from pytest, as users will write them."""

from __future__ import annotations

import pytest

from exosms.testing import ScriptError, converse, parse_script


@pytest.fixture
def shop_router():  # type: ignore[no-untyped-def]
    import shop  # examples/ is on sys.path (conftest), with $SHOP_DB in a temp folder

    return shop.router


def test_the_example_shop_as_a_conversation(shop_router) -> None:  # type: ignore[no-untyped-def]
    converse(
        shop_router,
        """
        # a customer checks two orders
        9052161119 > ORDER 1001
        <~ Order 1001 \\(2 x Basmati rice 5kg\\) is out for delivery\\. Thank you .* Acme Stores\\.
        09052161119 > ord: #1003
        <~ Order 1003 .* delivered on 24 Nov\\..*
        9052161119 > hello?
        <
        """,
    )


def test_a_wrong_reply_fails_with_a_diff(shop_router) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError) as failure:
        converse(shop_router, "9052161119 > ORDER 1002\n< Order 1002 is delivered\n")
    message = str(failure.value)
    assert "line 1: 9052161119 > ORDER 1002" in message
    assert "-Order 1002 is delivered" in message
    assert "+Order 1002 (1 x Pressure cooker 3L) is packed" in message


def test_expected_silence_fails_when_a_reply_comes(shop_router) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError, match=r"\+Acme Stores: send ORDER"):
        converse(shop_router, "9052161119 > HELP\n<\n")


def test_script_syntax() -> None:
    turns = parse_script(
        """
        9052161119@+918088919888 > multi\\nline
        < two\\nlines
        9052161119 > unchecked
        9052161119 > last
        <~ l.st
        """
    )
    assert [(t.sender, t.recipient, t.body) for t in turns] == [
        ("9052161119", "+918088919888", "multi\nline"),
        ("9052161119", None, "unchecked"),
        ("9052161119", None, "last"),
    ]
    assert [(t.expect, t.is_regex, t.is_checked) for t in turns] == [
        ("two\nlines", False, True),
        (None, False, False),
        ("l.st", True, True),
    ]
    with pytest.raises(ScriptError, match="line 2: bad regex"):
        parse_script("1 > x\n<~ (unclosed\n")
    with pytest.raises(ScriptError, match="no SMS"):
        parse_script("# nothing\n")
    with pytest.raises(ScriptError, match="line 1: expected 'SENDER > TEXT'"):
        parse_script("just words\n")
