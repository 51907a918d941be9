"""Many literal strings looked for in a text in one pass (Aho-Corasick, ``pyahocorasick``).

The regex rules (:mod:`exosms.rule_index`) and the DLT templates (:mod:`exosms.dlt`) each
need some fixed text to be in a message before anything slower is tried; this finds which
of thousands of such texts a message holds in time proportional to the message.
"""

from __future__ import annotations

from collections.abc import Iterable


class Literals:
    """A fixed set of strings; :meth:`found_in` names those a text contains."""

    def __init__(self, literals: Iterable[str]) -> None:
        import ahocorasick

        self._automaton = ahocorasick.Automaton()
        for literal in literals:
            if literal:
                self._automaton.add_word(literal, literal)
        self.is_empty = len(self._automaton) == 0
        if not self.is_empty:
            self._automaton.make_automaton()

    def found_in(self, text: str) -> set[str]:
        """Every literal that occurs in ``text``."""
        if self.is_empty:
            return set()
        return {literal for _, literal in self._automaton.iter(text)}
