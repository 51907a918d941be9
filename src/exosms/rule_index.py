"""Which regex rules can match a message, found without trying them all.

A regex rule can only match a message that holds every literal run its pattern requires
(``order\\s+status\\s+(\\d+)`` needs ``order`` and ``status``). Every literal the rules
need is found in the message in one pass (:mod:`exosms.literals`); a rule is tried only when
the message holds all of its literals. A thousand regexes that each need a word the message
lacks cost one pass over the message instead of a thousand regex calls, and the first match
in registration order is still the one found.

The literals come from the pattern as Python's own parser reads it (``re._parser``); a
pattern it cannot read, or one with no literal the check can trust, is simply always tried.
A literal is only ever a reason to skip a rule that cannot match: ``tests/test_rule_index.py``
checks, over generated patterns and messages, that the rule found is always the one trying
every rule in order would find.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from exosms.literals import Literals

MIN_LITERAL = 2  # a one-character literal is in most messages: no help, only a check

# Under IGNORECASE, re matches an ASCII letter to these too (besides the other case);
# str.casefold maps the others (long s, Kelvin sign) by itself.
_ASCII_EQUIVALENTS = str.maketrans({"\u0130": "i", "\u0131": "i"})


def fold(text: str) -> str:
    """``text`` as a pattern's case-insensitive literals are compared with it."""
    return text.translate(_ASCII_EQUIVALENTS).casefold()


def required_literals(pattern: re.Pattern[str]) -> tuple[tuple[str, ...], bool]:
    """The literal runs every match of ``pattern`` contains, and whether they are folded
    (the pattern ignores case). Conservative: a run it is unsure of is left out."""
    from re import _constants as sre  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # a pattern re compiled but its parser does not read: always tried
        return (), False
    folded = bool(parsed.state.flags & re.IGNORECASE)
    runs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if len(current) >= MIN_LITERAL:
            runs.append("".join(current))
        current.clear()

    def walk(items: Iterable[tuple[Any, Any]]) -> None:
        for op, value in items:
            if op is sre.LITERAL and (not folded or value < 128):
                current.append(chr(value))
            elif op is sre.SUBPATTERN and not value[1] and not value[2]:
                walk(value[3])  # a group without flags of its own: part of the sequence
            else:  # anything else may match more than one text: the run ends here
                flush()

    walk(parsed)
    flush()
    return tuple(fold(run) if folded else run for run in runs), folded


class PatternRule(Protocol):
    """What the index needs of a rule (:class:`exosms.routing.Rule` is one)."""

    @property
    def index(self) -> int: ...

    @property
    def pattern(self) -> re.Pattern[str] | None: ...


R = TypeVar("R", bound=PatternRule)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[R]):
    rule: R
    pattern: re.Pattern[str]
    others: frozenset[str]  # the rule's literals besides the one it is found by


class RegexIndex(Generic[R]):
    """The regex rules of a router (in index order), each found by the rarest literal its
    pattern needs and checked for the rest before its pattern is tried."""

    def __init__(self, rules: Sequence[R]) -> None:
        needs = []
        for rule in rules:
            assert rule.pattern is not None, "only regex rules are indexed"
            needs.append((rule, rule.pattern, *required_literals(rule.pattern)))
        shared = Counter((lit, folded) for *_, lits, folded in needs for lit in set(lits))
        self.always: list[_Entry[R]] = []  # no literal to check: always tried
        self.by_literal: tuple[dict[str, list[_Entry[R]]], dict[str, list[_Entry[R]]]] = ({}, {})
        for rule, pattern, lits, folded in needs:
            if not lits:
                self.always.append(_Entry(rule, pattern, frozenset()))
                continue

            def rarity(lit: str, folded: bool = folded) -> tuple[int, int, str]:
                return shared[(lit, folded)], -len(lit), lit

            key = min(set(lits), key=rarity)
            entry = _Entry(rule, pattern, frozenset(lits) - {key})
            self.by_literal[folded].setdefault(key, []).append(entry)
        self.exact = Literals(lit for *_, lits, folded in needs if not folded for lit in lits)
        self.folded = Literals(lit for *_, lits, folded in needs if folded for lit in lits)

    def first(
        self, body: str, accepts: Callable[[R], bool], before: int
    ) -> tuple[R, re.Match[str]] | None:
        """The first rule (by index, below ``before``) whose scope ``accepts`` and whose
        pattern matches ``body``, with its match."""
        exact = self.exact.found_in(body)
        folded = self.folded.found_in(fold(body)) if not self.folded.is_empty else set()
        candidates = list(self.always)
        for present, entries in ((exact, self.by_literal[False]), (folded, self.by_literal[True])):
            for literal in present:
                found = entries.get(literal)
                if found is not None:
                    for entry in found:
                        if entry.others <= present:
                            candidates.append(entry)
        candidates.sort(key=lambda entry: entry.rule.index)
        for entry in candidates:
            if entry.rule.index >= before:
                break
            if accepts(entry.rule):
                matched = entry.pattern.match(body)
                if matched is not None:
                    return entry.rule, matched
        return None
