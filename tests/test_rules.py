"""The rules file, tested as conversations (`9052161119 > ORDER 12` / `< ...`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port
from upstream_server import upstream_server

from exosms.exotel.caller import AppletSms
from exosms.routing import Router
from exosms.rule_table import parse_duration
from exosms.rules import RulesContext, RulesError, RulesFile
from exosms.simulate import app_target, check_sms
from exosms.testing import RELAXED_GUARDS, converse

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def router(text: str, deadline: float = 2.0) -> Router:
    return RulesFile.from_text(text, "rules.toml").build(RulesContext(deadline=deadline))


def problems(text: str) -> list[str]:
    return [str(p) for p in RulesFile.from_text(text, "rules.toml").check()]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with upstream_server() as url:
        yield url


def test_keywords_aliases_unicode_and_only_keyword() -> None:
    converse(
        router(
            """
            [[rules]]
            keyword = "HOURS"
            aliases = ["timings", "समय"]
            reply = "Open 9 to 9"

            [[rules]]
            keyword = "MENU"
            only_keyword = true
            reply = "1 or 2?"

            [[rules]]
            default = true
            reply = "Send HOURS or MENU"
            """
        ),
        """
        9052161119 > hours
        < Open 9 to 9
        9052161119 > Timings please
        < Open 9 to 9
        9052161119 > समय
        < Open 9 to 9
        9052161119 > MENU
        < 1 or 2?
        9052161119 > menu of the day
        < Send HOURS or MENU
        """,
    )


def test_regex_groups_and_every_variable() -> None:
    converse(
        router(
            """
            [[rules]]
            name = "track"
            regex = '^TRACK\\s+(?P<awb>[A-Z]{2}\\d{6})(?:\\s+(?P<note>.*))?$'
            reply = "{awb} for {sender} to {recipient} ({note}) body={body}"

            [[rules]]
            keyword = "ECHO"
            reply = "{keyword}:{rest}:{received_at:%Y}"
            """
        ),
        """
        09052161119 > track AB123456 urgent
        < AB123456 for +919052161119 to 56070 (urgent) body=track AB123456 urgent
        9052161119 > track ZZ000001
        < ZZ000001 for +919052161119 to 56070 () body=track ZZ000001
        9052161119 > Echo: hello
        <~ ECHO:hello:20\\d\\d
        """,
    )


def test_recipient_and_sender_scoping() -> None:
    shop = router(
        """
        [[rules]]
        keyword = "INFO"
        to = ["56070"]
        reply = "short code info"

        [[rules]]
        keyword = "INFO"
        to = ["+918088919888"]
        reply = "long number info"

        [[rules]]
        keyword = "STAFF"
        from = ["+9190521*"]
        reply = "hello staff"

        [[rules]]
        default = true
        no_reply = true
        """
    )
    converse(
        shop,
        """
        9052161119@56070 > INFO
        < short code info
        9052161119@08088919888 > INFO
        < long number info
        9052161119@+918088919888 > info
        < long number info
        9052161119@56071 > INFO
        <
        9052161119 > STAFF
        < hello staff
        9812345678 > STAFF
        <
        """,
    )


def test_no_reply_rule_stores_without_answering() -> None:
    converse(
        router('[[rules]]\nkeyword = "NOTED"\nno_reply = true\n'),
        "9052161119 > NOTED\n<\n",
    )


def test_a_two_step_flow_with_state() -> None:
    converse(
        router((EXAMPLES / "shop-rules.toml").read_text()),
        """
        9052161119 > 1
        <
        9052161119 > MENU
        < Reply 1 for order status, 2 for returns. - Acme
        9812345678 > 1
        <
        9052161119 > 1
        < Send ORDER followed by your order number, e.g. ORDER 1001. - Acme
        9052161119 > 1
        <
        9052161119 > MENU
        < Reply 1 for order status, 2 for returns. - Acme
        9052161119 > 2
        <~ To return an item, .*
        """,
    )


def test_state_expires() -> None:
    rules = router(
        """
        [[rules]]
        keyword = "MENU"
        reply = "1 or 2?"
        set_state = "menu"
        state_ttl = 0.3

        [[rules]]
        regex = '^1$'
        state = "menu"
        reply = "one"
        """
    )

    async def run() -> list[str | None]:
        async with app_target(rules, guards=RELAXED_GUARDS) as target:
            replies = []
            for body, wait in (("MENU", 0.5), ("1", 0), ("MENU", 0), ("1", 0)):
                check = await check_sms(target, AppletSms(body=body), repeat=False)
                replies.append(check.reply)
                await asyncio.sleep(wait)
            return replies

    assert asyncio.run(run()) == ["1 or 2?", None, "1 or 2?", "one"]


def test_upstream_success_get_and_post(upstream: str) -> None:
    converse(
        router(
            f"""
            [[rules]]
            keyword = "ORDER"
            upstream = {{ url = "{upstream}/status?number={{rest}}&phone={{sender}}" }}

            [[rules]]
            keyword = "POST"
            upstream = {{ url = "{upstream}/post", method = "POST" }}

            [[rules]]
            keyword = "QUIET"
            upstream = "{upstream}/empty"
            """
        ),
        """
        9052161119 > ORDER 12 & 13
        < Order 12 & 13 for +919052161119 is out for delivery
        9052161119 > POST hi there
        <~ posted POST hi there from \\+919052161119 sid [0-9a-f]{32}
        9052161119 > QUIET
        <
        """,
    )


@pytest.mark.parametrize(
    "path, why",
    [
        ("/error", "upstream answered 500"),
        ("/html", "upstream answered text/html, not text/plain"),
        ("/slow", "upstream timed out after 0.4s"),
        ("refused", "upstream unreachable"),
    ],
)
def test_each_upstream_failure_gives_the_rule_fallback_and_records_why(
    upstream: str, path: str, why: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}/x" if path == "refused" else upstream + path
    rules = router(
        f"""
        [[rules]]
        keyword = "ORDER"
        upstream = {{ url = "{url}", timeout = 0.4 }}
        fallback = "Sorry, order {{rest}} cannot be checked now"
        """
    )

    async def run() -> tuple[str | None, object]:
        async with app_target(rules) as target:
            sms = AppletSms(body="ORDER 12")
            check = await check_sms(target, sms, repeat=False)
            stored = await target.app.state.engine.store.lookup(sms.sms_sid)  # type: ignore[attr-defined]
            return check.reply, stored

    reply, stored = asyncio.run(run())
    assert reply == "Sorry, order 12 cannot be checked now"
    assert stored.outcome == "fallback_error"  # type: ignore[attr-defined]
    assert why in stored.error  # type: ignore[attr-defined]


def test_the_upstream_pool_belongs_to_the_router_and_closes_with_the_app(upstream: str) -> None:
    context = RulesContext()
    rules = RulesFile.from_text(f'[[rules]]\nkeyword = "ORDER"\nupstream = "{upstream}/empty"\n')
    built = rules.build(context)

    async def run() -> tuple[bool, bool]:
        async with app_target(built) as target:
            await check_sms(target, AppletSms(body="ORDER 1"), repeat=False)
            pool = context.upstream._client
            assert pool is not None and not pool.is_closed  # made by the first call
        return pool.is_closed, context.upstream._client is None

    assert asyncio.run(run()) == (True, True)  # the app's end closed it


def test_upstream_without_a_rule_fallback_uses_the_global_one(upstream: str) -> None:
    converse(
        router(f'[[rules]]\nkeyword = "ORDER"\nupstream = "{upstream}/error"\n'),
        "9052161119 > ORDER 1\n< Try later\n",
        fallback_reply="Try later",
    )


def test_python_handler_by_import_path_and_a_python_router_in_order() -> None:
    converse(
        router(
            """
            [[rules]]
            keyword = "ORDER"
            handler = "shop:order_status"

            [[rules]]
            python = "exosms_test_apps:router"
            """
        ),
        """
        9052161119 > ORDER 1001
        <~ Order 1001 \\(2 x Basmati rice 5kg\\).*
        9052161119 > ECHO from the python router
        < from the python router
        """,
    )


def test_durations() -> None:
    assert parse_duration("10m") == 600
    assert parse_duration("2h") == 7200
    assert parse_duration(45) == 45
    with pytest.raises(ValueError):
        parse_duration("soon")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '[[rules]]\nkeyword = "A"\nreplay = "x"\n',
            "rules.toml:1: rule 'A': unknown key 'replay' (hint: did you mean 'reply'?)",
        ),
        (
            '[[rules]]\nkeyword = "A"\nreply = "hi {sendr}"\n',
            "rules.toml:1: rule 'A': unknown variable {sendr} in reply (hint: did you mean {sender}?)",
        ),
        (
            '\n\n[[rules]]\nregex = "(unclosed"\nreply = "x"\n',
            "rules.toml:3: rule '#1': the regex does not compile: missing ), unterminated subpattern at position 0",
        ),
        (
            '[[rules]]\nregex = "(?P<id>\\\\d+)"\nreply = "{idd}"\n',
            "rule '#1': unknown variable {idd} in reply (hint: did you mean {id}?)",
        ),
        ('[[rules]]\nkeyword = "A"\n', "needs exactly one action"),
        ('[[rules]]\nreply = "x"\n', "needs exactly one of keyword, regex, default = true, python"),
        (
            '[[rules]]\nkeyword = "A"\nreply = "x"\n[[rules]]\nkeyword = "a"\nreply = "y"\n',
            "rules.toml:4: rule 'a': can never match: keyword A is already answered by the rule at line 1 for the same recipients",
        ),
        (
            '[[rules]]\nregex = ".*"\nreply = "x"\n[[rules]]\nkeyword = "B"\nreply = "y"\n',
            "rules.toml:4: rule 'b': can never match: the rule at line 1 matches every message first",
        ),
        ('[[rules]]\nkeyword = "A"\nhandler = "nowhere:fn"\n', "cannot import 'nowhere'"),
        (
            '[[rules]]\nkeyword = "A"\nupstream = { url = "ftp://x", method = "PUT" }\n',
            "upstream url 'ftp://x' must start with http:// or https://",
        ),
        ('[[rules]]\nkeyword = "TWO WORDS"\nreply = "x"\n', "must be one word"),
        ('[[rules]]\nkeyword = "A"\nreply = "x"\nstate_ttl = "soon"\n', "'soon' is not a duration"),
        ("[[rules]\n", "not valid TOML"),
    ],
)
def test_check_names_each_problem_with_its_line(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_the_same_keyword_for_different_recipients_is_fine() -> None:
    assert (
        problems(
            '[[rules]]\nkeyword = "A"\nto = ["56070"]\nreply = "x"\n'
            '[[rules]]\nkeyword = "A"\nto = ["56071"]\nreply = "y"\n'
        )
        == []
    )


def test_build_refuses_a_bad_file_with_every_problem() -> None:
    with pytest.raises(RulesError) as error:
        router('[[rules]]\nkeyword = "A"\nreplay = "x"\n[[rules]]\nregex = "("\nreply = "y"\n')
    assert len(error.value.problems) >= 3


def test_the_example_rules_file_is_clean() -> None:
    assert RulesFile.from_path(EXAMPLES / "shop-rules.toml").check() == []


@pytest.mark.parametrize(
    "table, expected",
    [
        ('reply = 5\nkeyword = "A"', ["rule 'A': reply must be text"]),
        ('keyword = "A"\nno_reply = "yes"', ["no_reply must be true or false"]),
        ('keyword = "A"\nreply = "x"\nto = { a = 1 }', ["to must be text or a list of texts"]),
        ('keyword = "A"\nreply = "x"\nstate_ttl = -5', ["state_ttl must be positive"]),
        (
            'keyword = "A"\nupstream = { url = "ftp://x", method = "PUT", retries = 3 }',
            [
                "upstream method 'PUT' must be GET or POST",
                "unknown upstream key 'retries' (hint: use url, method, timeout)",
                "upstream url 'ftp://x' must start with http:// or https://",
            ],
        ),
        ('keyword = "A"\nupstream = { method = "GET" }', ["upstream needs a url"]),
    ],
)
def test_each_shape_problem_is_one_line_and_the_rest_is_still_checked(
    table: str, expected: list[str]
) -> None:
    found = problems(f"[[rules]]\n{table}\n")
    for line in expected:
        assert any(line in p for p in found), found
    assert not any("needs exactly one" in p for p in found), found  # the action was written
    assert len(found) == len(expected), found


def test_names_that_moved_are_still_importable_from_rules() -> None:
    from exosms.rules import UpstreamError as FromRules
    from exosms.rules import parse_duration as duration_from_rules
    from exosms.upstream import UpstreamError

    assert FromRules is UpstreamError and duration_from_rules("1h") == 3600
