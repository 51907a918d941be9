"""Which DLT templates a text can match, and which are closest when none does.

A text can only match a template that holds all of its static text, so each template is
known by a few windows of it (a short static part whole, a long one by its first and last
characters: templates that share a long middle still differ at its ends). Every window is
looked for in the text in one pass (:mod:`exosms.literals`); a template is a candidate only
when the text holds all its windows, and each is reached through its rarest one, so 5,000
templates that share a prefix, begin with a slot or differ only near the end cost one pass
and a few regular expressions, not 5,000.

When none matches, the closest are looked for among the templates sharing the text's
rarest windows first: the ones a person is likely to have meant.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from exosms.literals import Literals

WINDOW = 12  # characters of a long static part looked for at each of its ends
MIN_STATIC = 2  # a shorter static part ("." or " ") is in nearly every text: no help

K = TypeVar("K", bound=Hashable)


def windows(statics: Iterable[str]) -> frozenset[str]:
    """The pieces of static text a matching text must contain."""
    found: set[str] = set()
    for static in statics:
        if len(static) < MIN_STATIC:
            continue
        if len(static) <= WINDOW:
            found.add(static)
        else:
            found.update((static[:WINDOW], static[-WINDOW:]))
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class _Built(Generic[K]):
    literals: Literals
    postings: dict[str, list[K]]  # window -> the templates holding it
    by_rarest: dict[str, list[K]]  # window -> the templates reached through it
    free: list[K]  # templates with no window (all slots): always candidates
    order: dict[K, int]  # the order templates were added in


class TemplateIndex(Generic[K]):
    """Templates (by key) and the windows each needs; rebuilt on first use after a change."""

    def __init__(self) -> None:
        self._needs: dict[K, frozenset[str]] = {}
        self._built: _Built[K] | None = None

    def add(self, key: K, statics: Iterable[str]) -> None:
        self._needs[key] = windows(statics)
        self._built = None

    def remove(self, key: K) -> None:
        self._needs.pop(key, None)
        self._built = None

    def _build(self) -> _Built[K]:
        postings: dict[str, list[K]] = {}
        for key, need in self._needs.items():
            for window in need:
                postings.setdefault(window, []).append(key)
        by_rarest: dict[str, list[K]] = {}
        free = []
        for key, need in self._needs.items():
            if not need:
                free.append(key)
                continue
            rarest = min(need, key=lambda w: (len(postings[w]), -len(w), w))
            by_rarest.setdefault(rarest, []).append(key)
        order = {key: n for n, key in enumerate(self._needs)}
        self._built = _Built(Literals(postings), postings, by_rarest, free, order)
        return self._built

    def lookup(self, text: str) -> tuple[list[K], set[str]]:
        """The templates ``text`` holds every window of, and the windows it holds."""
        built = self._built or self._build()
        present = built.literals.found_in(text)
        found = list(built.free)
        needs = self._needs
        for window in present:
            for key in built.by_rarest.get(window, ()):
                if needs[key] <= present:
                    found.append(key)
        if len(found) > 1:  # a set's order varies between processes: the verdict must not
            order = built.order
            found.sort(key=order.__getitem__)
        return found, present

    def near(self, present: set[str], limit: int) -> list[K]:
        """Up to ``limit`` templates sharing windows with the text, the rarest windows'
        first."""
        built = self._built or self._build()
        pool: dict[K, None] = {}
        for window in sorted(present, key=lambda w: (len(built.postings[w]), w)):
            for key in built.postings[window]:
                pool.setdefault(key)
                if len(pool) >= limit:
                    return list(pool)
        return list(pool)
