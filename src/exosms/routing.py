"""Router: turns an incoming SMS into the handler that answers it.

Rules are tried in registration order and the first that matches wins. Keyword rules are
found through a dictionary keyed by the message's first word, so a thousand keywords cost
one lookup; only regex rules registered before the winning keyword are tried one by one.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

from exosms.sms import IncomingSms, Match, Reply

Handler: TypeAlias = Callable[
    [IncomingSms, Match], "str | Reply | Awaitable[str | Reply | None] | None"
]

# Punctuation customers put straight after a keyword: "ORDER: 12", "order,12", "STOP."
_KEYWORD_END = re.compile(r"[\s,:;.]")
_REST_START = re.compile(r"^[\s,:;.]*")


@dataclass(frozen=True, slots=True)
class Rule:
    """One registered rule: its position, name, handler and how it matches."""

    index: int
    name: str
    handler: Handler
    is_async: bool
    keyword: str | None = None
    pattern: re.Pattern[str] | None = None


def split_keyword(body: str) -> tuple[str, str]:
    """Split a message into its first word (case-folded) and the rest of the text.

    Leading spaces are skipped and ``, : ; .`` after the keyword are tolerated:
    ``"  Order: 12"`` gives ``("order", "12")``.
    """
    text = body.lstrip()
    end = _KEYWORD_END.search(text)
    if end is None:
        return text.casefold(), ""
    word = text[: end.start()]
    rest = text[end.start() :]
    rest = rest[_REST_START.match(rest).end() :]  # type: ignore[union-attr]
    return word.casefold(), rest


class Router:
    """Ordered rules (keyword, regex, default) that map an SMS to a handler.

    Handlers take ``(sms, match)`` and return the reply text, ``None`` for no reply, or a
    :class:`~exosms.Reply`. They may be plain functions (run in a worker thread so they
    cannot stall the server) or ``async def`` coroutines (run on the event loop).
    """

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._keywords: dict[str, Rule] = {}
        self._regexes: list[Rule] = []
        self._default: Rule | None = None

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(self._rules)

    def keyword(self, *keywords: str, name: str | None = None) -> Callable[[Handler], Handler]:
        """Register a handler for messages whose first word is one of ``keywords``.

        Matching is case-insensitive; the text after the keyword is ``match.rest``.
        """
        if not keywords:
            raise ValueError("keyword() needs at least one keyword")
        for word in keywords:
            if not word or _KEYWORD_END.search(word):
                raise ValueError(f"keyword {word!r} must be one word without punctuation")

        def register(handler: Handler) -> Handler:
            rule = self._add(handler, name, keyword=keywords[0].upper())
            for word in keywords:
                # An earlier rule with the same word wins: first registered, first matched.
                self._keywords.setdefault(word.casefold(), rule)
            return handler

        return register

    def regex(
        self, pattern: str, *, flags: int = re.IGNORECASE, name: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Register a handler for messages that match ``pattern`` (searched from the start).

        Named groups are passed on in ``match.groups``.
        """
        compiled = re.compile(pattern, flags)

        def register(handler: Handler) -> Handler:
            self._regexes.append(self._add(handler, name, pattern=compiled))
            return handler

        return register

    def default(self, handler: Handler) -> Handler:
        """Register the handler for messages no other rule matched."""
        self._default = self._add(handler, None)
        return handler

    def _add(
        self,
        handler: Handler,
        name: str | None,
        *,
        keyword: str | None = None,
        pattern: re.Pattern[str] | None = None,
    ) -> Rule:
        rule = Rule(
            index=len(self._rules),
            name=name or str(getattr(handler, "__name__", "handler")),
            handler=handler,
            is_async=inspect.iscoroutinefunction(handler),
            keyword=keyword,
            pattern=pattern,
        )
        self._rules.append(rule)
        return rule

    def route(self, sms: IncomingSms) -> tuple[Rule, Match] | None:
        """Find the first rule (in registration order) that matches ``sms``."""
        word, rest = split_keyword(sms.body)
        keyword_rule = self._keywords.get(word)
        limit = keyword_rule.index if keyword_rule is not None else len(self._rules)
        for rule in self._regexes:
            if rule.index >= limit:
                break
            assert rule.pattern is not None
            found = rule.pattern.match(sms.body)
            if found is not None:
                groups = {k: v for k, v in found.groupdict().items() if v is not None}
                return rule, Match(rule=rule.name, rest=sms.body, groups=groups)
        if keyword_rule is not None:
            return keyword_rule, Match(
                rule=keyword_rule.name, keyword=keyword_rule.keyword, rest=rest
            )
        if self._default is not None:
            return self._default, Match(rule=self._default.name, rest=sms.body)
        return None
