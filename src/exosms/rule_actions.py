"""What a rule does when it matches: its reply template, no reply, a handler, an upstream.

Each becomes a handler of the :class:`~exosms.Router`, wrapped to set the sender's session
state when the rule says so.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from exosms.routing import Fixed, Handler
from exosms.rule_table import RuleTable
from exosms.sms import IncomingSms, Match, Reply
from exosms.upstream import Upstream, UpstreamError

VARIABLES = ("sender", "recipient", "body", "rest", "keyword", "sms_sid", "received_at")


@dataclass
class RulesContext:
    """What building rules needs from the server: deadline, time zone, HTTP for upstreams."""

    deadline: float = 2.0
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Kolkata"))
    check_imports: bool = True
    upstream: Upstream = field(default_factory=Upstream)  # the pool the upstream rules share


class _Variables(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""  # an optional regex group that did not take part


def variables(sms: IncomingSms, match: Match, timezone: ZoneInfo) -> dict[str, Any]:
    values = _Variables(match.groups)
    values.update(
        sender=sms.sender,
        recipient=sms.recipient,
        body=sms.body,
        rest=match.rest if match.keyword is not None else "",
        keyword=match.keyword or "",
        sms_sid=sms.sms_sid,
        received_at=sms.received_at.astimezone(timezone),
    )
    return values


def import_handler(spec: str) -> Any:
    from exosms.loading import AppLoadError, load_object

    try:
        return load_object(spec)
    except AppLoadError as error:
        raise ValueError(str(error)) from None


def named(handler: Handler, name: str) -> Handler:
    handler.__name__ = name
    return handler


def _with_state(
    table: RuleTable, handler: Callable[[IncomingSms, Match], Any]
) -> Callable[[IncomingSms, Match], Any]:
    if table.set_state is None:
        return handler
    new_state = table.set_state or None
    ttl = table.state_ttl

    def note(sms: IncomingSms) -> None:
        sms.session.state = new_state
        if ttl is not None:
            sms.session.ttl = ttl

    if inspect.iscoroutinefunction(handler):

        async def run_async(sms: IncomingSms, match: Match) -> Any:
            result = await handler(sms, match)
            note(sms)
            return result

        return run_async

    def run(sms: IncomingSms, match: Match) -> Any:
        result = handler(sms, match)
        note(sms)
        return result

    return run


def handler_for(table: RuleTable, context: RulesContext) -> Handler:
    timezone = context.timezone
    fallback = table.fallback
    if table.no_reply:

        async def no_reply(sms: IncomingSms, match: Match) -> None:
            return None

        if table.set_state is None:  # no session to note: no user code, one write
            return Fixed("no_reply", lambda sms, match: None)
        return _with_state(table, no_reply)
    if table.reply is not None:
        template = table.reply

        def render(sms: IncomingSms, match: Match) -> str:
            return template.format_map(variables(sms, match, timezone))

        async def reply(sms: IncomingSms, match: Match) -> str:
            return render(sms, match)

        if table.set_state is None:
            return Fixed("reply", render)
        return _with_state(table, reply)
    if table.handler is not None:
        target = import_handler(table.handler)
        return _with_state(table, target)
    assert table.upstream is not None
    upstream = context.upstream
    url, method = table.upstream.url, table.upstream.method
    # Leave room inside the reply deadline to store the answer and send it.
    timeout = max(0.05, min(table.upstream.timeout, context.deadline - 0.1))

    async def call_upstream(sms: IncomingSms, match: Match) -> str | Reply | None:
        values = variables(sms, match, timezone)
        try:
            return await upstream.fetch_reply(url, method, timeout, sms, values)
        except UpstreamError as error:
            if fallback is None:
                raise
            return Reply(fallback.format_map(values), error=str(error))

    return _with_state(table, call_upstream)
