"""Router: turns an incoming SMS into the handler that answers it.

Rules are tried in registration order and the first that matches wins. Keyword rules are
found through a dictionary keyed by the message's first word, so a thousand keywords cost
one lookup; regex rules are found through the literals their patterns need
(:mod:`exosms.rule_index`), so a thousand regexes a message cannot match cost a few substring
checks. Any rule may be limited to some recipients (Exotel numbers), some senders, or a
conversation state.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeAlias

from exosms.numbers import normalise
from exosms.rule_index import RegexIndex
from exosms.sms import IncomingSms, Match, Reply

Handler: TypeAlias = Callable[
    [IncomingSms, Match], "str | Reply | Awaitable[str | Reply | None] | None"
]

# Punctuation customers put straight after a keyword: "ORDER: 12", "order,12", "STOP."
_KEYWORD_END = re.compile(r"[\s,:;.]")
_REST_START = re.compile(r"^[\s,:;.]*")


def split_keyword(body: str) -> tuple[str, str]:
    """Split a message into its first word (case-folded) and the rest of the text.

    Leading spaces are skipped and ``, : ; .`` after the keyword are tolerated:
    ``"  Order: 12"`` gives ``("order", "12")``.
    """
    text = body.lstrip()
    end = _KEYWORD_END.search(text)
    if end is None:
        return text.casefold(), ""
    rest = text[end.start() :]
    found = _REST_START.match(rest)
    return text[: end.start()].casefold(), rest[found.end() if found else 0 :]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which messages a rule may answer: recipients, senders, conversation state."""

    recipients: frozenset[str] | None = None  # normalised Exotel numbers / short codes
    senders: tuple[str, ...] | None = None  # normalised numbers; "prefix*" matches a prefix
    state: str | None = None  # the sender's session state this rule requires

    @classmethod
    def build(
        cls,
        to: Iterable[str] | None = None,
        senders: Iterable[str] | None = None,
        state: str | None = None,
    ) -> Scope:
        """A scope of recipient numbers, sender numbers (any form) and a session state."""
        recipients = frozenset(normalise(str(n)) for n in to) if to else None
        sender_list = (
            tuple(s if s.endswith("*") else normalise(s) for s in (str(x).strip() for x in senders))
            if senders
            else None
        )
        return cls(recipients, sender_list, state)

    def accepts(self, sms: IncomingSms, state: str | None) -> bool:
        """Whether ``sms``, in session ``state``, is within this scope."""
        if self.recipients is not None and sms.recipient not in self.recipients:
            return False
        if self.senders is not None and not any(
            sms.sender.startswith(s[:-1]) if s.endswith("*") else sms.sender == s
            for s in self.senders
        ):
            return False
        return self.state is None or self.state == state

    def covers(self, other: Scope) -> bool:
        """True when every message ``other`` accepts, this scope accepts too."""
        if self.recipients is not None and (
            other.recipients is None or not other.recipients <= self.recipients
        ):
            return False
        if self.senders is not None and (
            other.senders is None or not set(other.senders) <= set(self.senders)
        ):
            return False
        return self.state is None or self.state == other.state


class Fixed:
    """A handler that runs no user code: its reply follows from the message and the match
    alone, at once (a rules file's ``reply`` or ``no_reply``). The engine may work such a
    reply out inside the claim's own write, so that the SMS costs one write, not two."""

    def __init__(self, name: str, render: Callable[[IncomingSms, Match], str | None]) -> None:
        self.__name__ = name
        self.render = render

    async def __call__(self, sms: IncomingSms, match: Match) -> str | None:
        """The reply, as any handler gives it (simulations, ``/api/try``)."""
        return self.render(sms, match)


@dataclass(frozen=True, slots=True)
class Rule:
    """One registered rule: its position, name, handler and how it matches."""

    index: int
    name: str
    handler: Handler
    is_async: bool
    keywords: tuple[str, ...] = ()  # upper-case, as registered
    pattern: re.Pattern[str] | None = None
    only_keyword: bool = False  # the whole message must be the keyword
    scope: Scope = field(default_factory=Scope)

    @property
    def keyword(self) -> str | None:
        """The rule's first keyword (``None`` for a regex or catch-all rule)."""
        return self.keywords[0] if self.keywords else None

    @property
    def fixed(self) -> Fixed | None:
        """The handler, when it runs no user code (a :class:`Fixed` reply)."""
        return self.handler if isinstance(self.handler, Fixed) else None

    @property
    def is_catch_all(self) -> bool:
        """Whether the rule answers any message (no keyword, no pattern)."""
        return not self.keywords and self.pattern is None


class Router:
    """Ordered rules (keyword, regex, catch-all) that map an SMS to a handler.

    Handlers take ``(sms, match)`` and return the reply text, ``None`` for no reply, or a
    :class:`~exosms.Reply`. They may be plain functions (run in a worker thread so they
    cannot stall the server) or ``async def`` coroutines (run on the event loop).
    Pass ``sessions=True`` when handlers use ``sms.session``.
    """

    def __init__(self, *, sessions: bool = False) -> None:
        self._rules: list[Rule] = []
        self._keywords: dict[str, list[Rule]] = {}
        self._regexes: list[Rule] = []  # in order
        self._catch_alls: list[Rule] = []  # in order
        self._index: RegexIndex[Rule] | None = None  # of the regexes, built at first use
        self._default: Rule | None = None
        self._sessions = sessions
        self._fixed = 0  # rules whose reply runs no user code
        self._stateful = 0  # rules that require a conversation state (read on every SMS)
        self._closers: list[Callable[[], Awaitable[None]]] = []

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule in the order they are tried, the default last."""
        return tuple(self._rules) + ((self._default,) if self._default else ())

    @property
    def uses_sessions(self) -> bool:
        """Whether any rule reads or sets conversation state."""
        return self._sessions or self._stateful > 0

    @property
    def has_fixed_rules(self) -> bool:
        """Whether some rule's reply runs no user code (:class:`Fixed`)."""
        return self._fixed > 0 or (self._default is not None and self._default.fixed is not None)

    def keyword(
        self,
        *keywords: str,
        name: str | None = None,
        to: Iterable[str] | None = None,
        senders: Iterable[str] | None = None,
        state: str | None = None,
        only: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register a handler for messages whose first word is one of ``keywords``.

        Matching is case-insensitive; the text after the keyword is ``match.rest``. With
        ``only=True`` the message must be the keyword alone. ``to``, ``senders`` and
        ``state`` limit the rule to some recipients, senders or a conversation state.
        """
        if not keywords:
            raise ValueError("keyword() needs at least one keyword")
        for word in keywords:
            if not word or _KEYWORD_END.search(word):
                raise ValueError(f"keyword {word!r} must be one word without punctuation")

        def register(handler: Handler) -> Handler:
            self._add(
                handler,
                name,
                keywords=tuple(w.upper() for w in keywords),
                only_keyword=only,
                scope=Scope.build(to, senders, state),
            )
            return handler

        return register

    def regex(
        self,
        pattern: str,
        *,
        flags: int = re.IGNORECASE,
        name: str | None = None,
        to: Iterable[str] | None = None,
        senders: Iterable[str] | None = None,
        state: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler for messages that match ``pattern`` (from the start).

        Named groups are passed on in ``match.groups``.
        """
        compiled = re.compile(pattern, flags)

        def register(handler: Handler) -> Handler:
            self._add(handler, name, pattern=compiled, scope=Scope.build(to, senders, state))
            return handler

        return register

    def catch_all(
        self,
        *,
        name: str | None = None,
        to: Iterable[str] | None = None,
        senders: Iterable[str] | None = None,
        state: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler for every message in its scope, at this position."""

        def register(handler: Handler) -> Handler:
            self._add(handler, name, scope=Scope.build(to, senders, state))
            return handler

        return register

    def default(self, handler: Handler) -> Handler:
        """Register the handler for messages no other rule matched."""
        self._default = self._make(handler, None, index=1 << 30)
        return handler

    def include(self, other: Router) -> None:
        """Append ``other``'s rules here, in its order; its default becomes a catch-all."""
        for rule in other.rules:
            self._place(replace(rule, index=len(self._rules)))
        self._sessions = self._sessions or other._sessions
        self._closers.extend(other._closers)

    def on_close(self, close: Callable[[], Awaitable[None]]) -> None:
        """Call ``close`` when the server that runs this router stops (a connection pool
        the handlers share, say)."""
        self._closers.append(close)

    async def aclose(self) -> None:
        """Run every :meth:`on_close` callback, in the order they were given."""
        for close in self._closers:
            await close()

    def _make(
        self,
        handler: Handler,
        name: str | None,
        *,
        index: int,
        keywords: tuple[str, ...] = (),
        pattern: re.Pattern[str] | None = None,
        only_keyword: bool = False,
        scope: Scope | None = None,
    ) -> Rule:
        return Rule(
            index=index,
            name=name or str(getattr(handler, "__name__", "handler")),
            handler=handler,
            is_async=isinstance(handler, Fixed) or inspect.iscoroutinefunction(handler),
            keywords=keywords,
            pattern=pattern,
            only_keyword=only_keyword,
            scope=scope or Scope(),
        )

    def _add(self, handler: Handler, name: str | None, **how: object) -> None:
        self._place(self._make(handler, name, index=len(self._rules), **how))  # type: ignore[arg-type]

    def _place(self, rule: Rule) -> None:
        self._rules.append(rule)
        self._fixed += rule.fixed is not None
        self._stateful += rule.scope.state is not None
        if rule.keywords:
            for word in rule.keywords:
                self._keywords.setdefault(word.casefold(), []).append(rule)
        elif rule.pattern is not None:
            self._regexes.append(rule)
            self._index = None
        else:
            self._catch_alls.append(rule)

    def route(self, sms: IncomingSms, state: str | None = None) -> tuple[Rule, Match] | None:
        """Find the first rule (in registration order) that matches ``sms``.

        ``state`` is the sender's conversation state, for rules that require one.
        """
        word, rest = split_keyword(sms.body)
        keyword_rules = self._keywords.get(word, ())
        chosen: Rule | None = None
        for rule in keyword_rules:
            if (not rule.only_keyword or not rest) and rule.scope.accepts(sms, state):
                chosen = rule
                break
        limit = chosen.index if chosen is not None else 1 << 31
        catch_all: Rule | None = None
        for rule in self._catch_alls:
            if rule.index >= limit:
                break
            if rule.scope.accepts(sms, state):
                catch_all, limit = rule, rule.index
                break
        if self._regexes:
            index = self._index
            if index is None:
                index = self._index = RegexIndex(self._regexes)
            found = index.first(sms.body, lambda r: r.scope.accepts(sms, state), limit)
            if found is not None:
                rule, matched = found
                groups = {k: v for k, v in matched.groupdict().items() if v is not None}
                return rule, Match(rule=rule.name, rest=sms.body, groups=groups)
        if catch_all is not None:
            return catch_all, Match(rule=catch_all.name, rest=sms.body)
        if chosen is not None:
            return chosen, Match(rule=chosen.name, keyword=chosen.keyword, rest=rest)
        if self._default is not None:
            return self._default, Match(rule=self._default.name, rest=sms.body)
        return None
