"""The rules file: replies without code.

An ordered list of ``[[rules]]`` tables, each a match and an action, read from TOML and
turned into a :class:`~exosms.Router` that uses the same decorators Python users call.
Every problem is reported with the line of the rule it is in and a hint.
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from exosms.config import Settings
from exosms.routing import Router, Scope
from exosms.rule_actions import (
    VARIABLES,
    RulesContext,
    handler_for,
    import_handler,
    named,
)
from exosms.rule_table import (  # parse_duration: importable from here, as it was
    ACTION_KEYS,
    MATCH_KEYS,
    RuleTable,
    parse_duration,
    read_table,
    written,
)
from exosms.upstream import UpstreamError  # importable from here, as it was

__all__ = [
    "Problem",
    "RulesContext",
    "RulesError",
    "RulesFile",
    "UpstreamError",
    "load_rules",
    "parse_duration",
    "router_from_settings",
    "rules_source",
]
_SAMPLES = ("", "x", "ORDER 12", "hello there", "नमस्ते", "1", " ")  # to spot catch-all regexes


class RulesError(Exception):
    """The rules cannot be used; ``problems`` lists every one, each with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    line: int
    rule: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.source}:{self.line}: rule {self.rule}: {self.message}{hint}"


@dataclass
class RuleSpec:
    """One ``[[rules]]`` table as written, with its line number."""

    number: int
    line: int
    data: dict[str, Any]  # as written
    table: RuleTable = field(default_factory=RuleTable)  # as read (keys with problems left out)
    name: str = ""
    scope: Scope = field(default_factory=Scope)
    pattern: re.Pattern[str] | None = None


def _rule_lines(text: str) -> list[int]:
    return [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if re.match(r"^\s*\[\[\s*rules\s*\]\]", line)
    ]


def template_fields(template: str) -> list[str]:
    """The names a reply template fills in (``{body}``, ``{match[1]}``...): none if fixed."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            names.append(re.split(r"[.\[]", name, maxsplit=1)[0])
    return names


Report = Callable[..., None]  # problem(message, hint="")


def _check_match_and_action(
    data: dict[str, Any], table: RuleTable, context: RulesContext, problem: Report
) -> bool:
    """One way to match and one action; False for a python rule (nothing more to check)."""
    matches, actions = written(data, MATCH_KEYS), written(data, ACTION_KEYS)
    if len(matches) != 1:
        problem(
            "needs exactly one of keyword, regex, default = true, python"
            + (f" (has {', '.join(matches)})" if matches else ""),
            'e.g. keyword = "ORDER"',
        )
    if "python" in matches:
        if actions:
            problem("a python rule includes a Router: it takes no action of its own")
        elif context.check_imports and table.python != "app":
            from exosms.loading import AppLoadError, load_router

            try:
                load_router(str(table.python))
            except AppLoadError as error:
                problem(str(error))
        return False
    if len(actions) != 1:
        problem(
            "needs exactly one action: reply, no_reply = true, upstream or handler"
            + (f" (has {', '.join(actions)})" if actions else ""),
            'e.g. reply = "Thanks, we got your message."',
        )
    return True


def _check_keywords(table: RuleTable, problem: Report) -> None:
    for word in table.words:
        if not word or re.search(r"[\s,:;.]", word):
            problem(f"keyword {word!r} must be one word without spaces or , : ; .")
    if table.keyword is None and table.aliases:
        problem("aliases need a keyword")
    if table.only_keyword and table.keyword is None:
        problem("only_keyword needs a keyword")


def _check_regex(spec: RuleSpec, problem: Report) -> list[str]:
    """Compile the rule's regex (kept on ``spec``); its named groups are variables."""
    if spec.table.regex is None:
        return []
    try:
        spec.pattern = re.compile(spec.table.regex, re.IGNORECASE)
    except re.error as error:
        problem(f"the regex does not compile: {error}", "escape ( ) [ ] . ? * + with \\")
        return []
    return list(spec.pattern.groupindex)


def _check_handler(handler: Any, problem: Report) -> None:
    try:
        target = import_handler(str(handler))
    except ValueError as error:
        problem(str(error))
        return
    if not callable(target):
        problem(f"handler {handler!r} is not a function")


class RulesFile:
    """Reads, checks and builds a rules file."""

    def __init__(self, entries: list[Any], source: str, lines: list[int]) -> None:
        self.source = source
        self.specs: list[RuleSpec] = []
        self.problems: list[Problem] = []
        for number, entry in enumerate(entries, start=1):
            line = lines[number - 1] if number - 1 < len(lines) else 0
            if not isinstance(entry, dict):
                self._problem(line, f"#{number}", "is not a table", "write it as [[rules]]")
                continue
            self.specs.append(RuleSpec(number, line, entry))

    @classmethod
    def from_text(cls, text: str, source: str = "rules") -> RulesFile:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            found = re.search(r"line (\d+)", str(error))
            rules = cls([], source, [])
            rules._problem(int(found.group(1)) if found else 0, "-", f"not valid TOML: {error}")
            return rules
        entries = data.get("rules", [])
        if not isinstance(entries, list):
            rules = cls([], source, [])
            rules._problem(0, "-", "'rules' must be a list of [[rules]] tables")
            return rules
        return cls(entries, source, _rule_lines(text))

    @classmethod
    def from_path(cls, path: Path) -> RulesFile:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            rules = cls([], str(path), [])
            rules._problem(0, "-", f"cannot read the file: {error}")
            return rules
        return cls.from_text(text, str(path))

    def _problem(self, line: int, rule: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.source, line, rule, message, hint))

    def check(self, context: RulesContext | None = None) -> list[Problem]:
        """Every problem in the file; an empty list means it can be served."""
        context = context or RulesContext()
        defaults = 0
        for spec in self.specs:
            self._check_spec(spec, context)
            defaults += spec.table.default
        if defaults > 1:
            lines = [s.line for s in self.specs if s.table.default]
            self._problem(lines[1], "-", "more than one default rule", "keep one default")
        self._check_shadowing()
        return self.problems

    def _check_spec(self, spec: RuleSpec, context: RulesContext) -> None:
        data = spec.data
        label = repr(str(data.get("name") or data.get("keyword") or f"#{spec.number}"))

        def problem(message: str, hint: str = "") -> None:
            self._problem(spec.line, label, message, hint)

        spec.table, shape_problems = read_table(data)
        for message, hint in shape_problems:
            problem(message, hint)
        table = spec.table
        spec.name = (table.name or table.keyword or f"rule{spec.number}").lower()
        if not _check_match_and_action(data, table, context, problem):
            return  # a python rule: its Router holds the rest
        _check_keywords(table, problem)
        groups = _check_regex(spec, problem)
        known = (*VARIABLES, *groups)
        for key, template in (("reply", table.reply), ("fallback", table.fallback)):
            if template is not None:
                self._check_template(template, key, known, problem)
        if table.upstream is not None:
            url = table.upstream.url
            if not url.startswith(("http://", "https://")):
                problem(f"upstream url {url!r} must start with http:// or https://")
            self._check_template(url, "upstream url", known, problem)
        if table.handler is not None and context.check_imports:
            _check_handler(table.handler, problem)
        try:
            spec.scope = Scope.build(table.to or None, table.senders or None, table.state)
        except (TypeError, ValueError) as error:
            problem(f"bad to/from: {error}")

    @staticmethod
    def _check_template(
        template: str, key: str, known: tuple[str, ...], problem: Callable[[str, str], None]
    ) -> None:
        try:
            names = template_fields(template)
        except ValueError as error:
            problem(f"{key} is not a valid template: {error}", "write a literal { as {{")
            return
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                problem(
                    f"unknown variable {{{name}}} in {key}",
                    f"did you mean {{{close[0]}}}?"
                    if close
                    else f"known: {', '.join('{' + k + '}' for k in known)}",
                )

    def _check_shadowing(self) -> None:
        """Rules an earlier rule always beats can never answer: name them."""
        earlier: list[RuleSpec] = []
        for spec in self.specs:
            if spec.table.python or spec.table.default:
                continue
            for before in earlier:
                reason = self._shadows(before, spec)
                if reason:
                    self._problem(
                        spec.line,
                        repr(spec.name),
                        f"can never match: {reason}",
                        "remove it, move it up, or narrow the earlier rule with to/from/state",
                    )
                    break
            earlier.append(spec)

    def _shadows(self, before: RuleSpec, later: RuleSpec) -> str:
        b, a = before.table, later.table
        if not before.scope.covers(later.scope):
            return ""
        if before.pattern is not None and all(before.pattern.match(s) for s in _SAMPLES):
            return f"the rule at line {before.line} matches every message first"
        if b.keyword is not None and a.keyword is not None:
            before_words = {w.casefold() for w in b.words}
            later_words = {w.casefold() for w in a.words}
            if later_words <= before_words and (not b.only_keyword or a.only_keyword):
                word = sorted(later_words)[0].upper()
                return (
                    f"keyword {word} is already answered by the rule at line {before.line} "
                    "for the same recipients"
                )
        return ""

    def build(
        self, context: RulesContext | None = None, app_router: Router | None = None
    ) -> Router:
        """The Router these rules describe; raises :class:`RulesError` when any is wrong."""
        context = context or RulesContext()
        problems = self.check(context)
        if problems:
            raise RulesError(problems)
        uses_state = any(
            s.table.state is not None or s.table.set_state is not None for s in self.specs
        )
        router = Router(sessions=uses_state or bool(app_router and app_router.uses_sessions))
        included_app = False
        for spec in self.specs:
            table = spec.table
            if table.python:
                from exosms.loading import load_router

                if table.python == "app":  # the --app router, placed here
                    if app_router is not None:
                        router.include(app_router)
                        included_app = True
                else:
                    router.include(load_router(table.python))
                continue
            handler = handler_for(table, context)
            to, senders = table.to or None, table.senders or None
            if table.default:
                router.default(named(handler, spec.name))
            elif table.keyword is not None:
                router.keyword(
                    *table.words,
                    name=spec.name,
                    only=table.only_keyword,
                    to=to,
                    senders=senders,
                    state=table.state,
                )(handler)
            else:
                router.regex(
                    str(table.regex), name=spec.name, to=to, senders=senders, state=table.state
                )(handler)
        if any(spec.table.upstream is not None for spec in self.specs):
            router.on_close(context.upstream.aclose)
        if app_router is not None and not included_app:
            router.include(app_router)
        return router


def rules_source(settings: Settings, config_file: Path | None) -> Path | None:
    """The file holding the rules: ``rules_file``, or the config file with inline rules."""
    from exosms.config import rules_path

    path = rules_path(settings, config_file)
    if path is not None:
        return path
    return config_file if settings.rules else None


def load_rules(settings: Settings, config_file: Path | None) -> RulesFile | None:
    source = rules_source(settings, config_file)
    if source is not None:
        return RulesFile.from_path(source)
    if settings.rules:
        return RulesFile(list(settings.rules), "settings", [])
    return None


def context_for(settings: Settings) -> RulesContext:
    return RulesContext(deadline=settings.reply_deadline, timezone=ZoneInfo(settings.timezone))


def router_from_settings(settings: Settings, config_file: Path | None) -> Router:
    """The router ``serve`` runs: the rules (then the ``app`` Router, unless a
    ``python = "app"`` rule places it), or the app alone, or the demo.

    Raises :class:`RulesError` or :class:`~exosms.loading.AppLoadError`.
    """
    from exosms.demo import build_demo_router
    from exosms.loading import load_router

    app_router = load_router(settings.app) if settings.app else None
    rules = load_rules(settings, config_file)
    if rules is None:
        return app_router or build_demo_router()
    return rules.build(context_for(settings), app_router)
