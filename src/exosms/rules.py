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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from exosms.config import Settings
from exosms.routing import Handler, Router, Scope
from exosms.sms import IncomingSms, Match, Reply
from exosms.upstream import UpstreamError, fetch_reply  # UpstreamError was defined here

MATCH_KEYS = ("keyword", "regex", "default", "python")
ACTION_KEYS = ("reply", "no_reply", "upstream", "handler")
OTHER_KEYS = (
    "name",
    "aliases",
    "only_keyword",
    "to",
    "from",
    "state",
    "set_state",
    "state_ttl",
    "fallback",
)
KNOWN_KEYS = MATCH_KEYS + ACTION_KEYS + OTHER_KEYS
UPSTREAM_KEYS = ("url", "method", "timeout")
VARIABLES = ("sender", "recipient", "body", "rest", "keyword", "sms_sid", "received_at")
_SAMPLES = ("", "x", "ORDER 12", "hello there", "नमस्ते", "1", " ")  # to spot catch-all regexes
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


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
    data: dict[str, Any]
    name: str = ""
    scope: Scope = field(default_factory=Scope)
    pattern: re.Pattern[str] | None = None


def parse_duration(value: Any) -> float:
    """``600``, ``"600"``, ``"10m"``, ``"2h"`` or ``"1d"`` in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    found = _DURATION.match(str(value))
    if found is None:
        raise ValueError(f"{value!r} is not a duration like 600, '10m' or '2h'")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _rule_lines(text: str) -> list[int]:
    return [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if re.match(r"^\s*\[\[\s*rules\s*\]\]", line)
    ]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int):
        return [str(value)]
    return [str(v) for v in value]


def _fields(template: str) -> list[str]:
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            names.append(re.split(r"[.\[]", name, maxsplit=1)[0])
    return names


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


@dataclass
class RulesContext:
    """What building rules needs from the server: deadline, time zone, HTTP for upstreams."""

    deadline: float = 2.0
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Kolkata"))
    import_object: Callable[[str], Any] | None = None
    check_imports: bool = True


Report = Callable[..., None]  # problem(message, hint="")


def _check_keys(data: Mapping[str, Any], problem: Report) -> None:
    for key in data:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            problem(f"unknown key {key!r}", f"did you mean {close[0]!r}?" if close else "")


def _check_match_and_action(
    data: Mapping[str, Any], context: RulesContext, problem: Report
) -> bool:
    """One way to match and one action; False for a python rule (nothing more to check)."""
    matches = [k for k in MATCH_KEYS if data.get(k) not in (None, False)]
    actions = [k for k in ACTION_KEYS if data.get(k) not in (None, False)]
    if len(matches) != 1:
        problem(
            "needs exactly one of keyword, regex, default = true, python"
            + (f" (has {', '.join(matches)})" if matches else ""),
            'e.g. keyword = "ORDER"',
        )
    if "python" in matches:
        if actions:
            problem("a python rule includes a Router: it takes no action of its own")
        elif context.check_imports and data["python"] != "app":
            from exosms.loading import AppLoadError, load_router

            try:
                load_router(str(data["python"]))
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


def _check_keywords(data: Mapping[str, Any], problem: Report) -> None:
    keyword = data.get("keyword")
    if keyword is not None:
        for word in [str(keyword), *_as_list(data.get("aliases"))]:
            if not word or re.search(r"[\s,:;.]", word):
                problem(f"keyword {word!r} must be one word without spaces or , : ; .")
    elif data.get("aliases") is not None:
        problem("aliases need a keyword")
    if data.get("only_keyword") and keyword is None:
        problem("only_keyword needs a keyword")


def _check_regex(spec: RuleSpec, problem: Report) -> list[str]:
    """Compile the rule's regex (kept on ``spec``); its named groups are variables."""
    if "regex" not in spec.data:
        return []
    try:
        spec.pattern = re.compile(str(spec.data["regex"]), re.IGNORECASE)
    except re.error as error:
        problem(f"the regex does not compile: {error}", "escape ( ) [ ] . ? * + with \\")
        return []
    return list(spec.pattern.groupindex)


def _check_handler(handler: Any, problem: Report) -> None:
    try:
        target = _import(str(handler))
    except ValueError as error:
        problem(str(error))
        return
    if not callable(target):
        problem(f"handler {handler!r} is not a function")


def _check_state(data: Mapping[str, Any], problem: Report) -> None:
    if "state_ttl" in data:
        try:
            if parse_duration(data["state_ttl"]) <= 0:
                problem("state_ttl must be positive")
        except ValueError as error:
            problem(str(error))
    for key in ("state", "set_state"):
        if key in data and not isinstance(data[key], str):
            problem(f"{key} must be text")


def _import(spec: str) -> Any:
    from exosms.loading import AppLoadError, load_object

    try:
        return load_object(spec)
    except AppLoadError as error:
        raise ValueError(str(error)) from None


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
            defaults += bool(spec.data.get("default"))
        if defaults > 1:
            lines = [s.line for s in self.specs if s.data.get("default")]
            self._problem(lines[1], "-", "more than one default rule", "keep one default")
        self._check_shadowing()
        return self.problems

    def _check_spec(self, spec: RuleSpec, context: RulesContext) -> None:
        data = spec.data
        label = repr(str(data.get("name") or data.get("keyword") or f"#{spec.number}"))
        spec.name = str(data.get("name") or data.get("keyword") or f"rule{spec.number}").lower()

        def problem(message: str, hint: str = "") -> None:
            self._problem(spec.line, label, message, hint)

        _check_keys(data, problem)
        if not _check_match_and_action(data, context, problem):
            return  # a python rule: its Router holds the rest
        _check_keywords(data, problem)
        groups = _check_regex(spec, problem)
        known = (*VARIABLES, *groups)
        for key in ("reply", "fallback"):
            template = data.get(key)
            if template is None:
                continue
            if not isinstance(template, str):
                problem(f"{key} must be text")
                continue
            self._check_template(template, key, known, problem)
        if "upstream" in data:
            self._check_upstream(data["upstream"], known, problem)
        if "handler" in data and context.check_imports:
            _check_handler(data["handler"], problem)
        _check_state(data, problem)
        try:
            spec.scope = Scope.build(
                _as_list(data.get("to")) or None,
                _as_list(data.get("from")) or None,
                data.get("state") if isinstance(data.get("state"), str) else None,
            )
        except (TypeError, ValueError) as error:
            problem(f"bad to/from: {error}")

    @staticmethod
    def _check_template(
        template: str, key: str, known: tuple[str, ...], problem: Callable[[str, str], None]
    ) -> None:
        try:
            names = _fields(template)
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

    def _check_upstream(
        self, upstream: Any, known: tuple[str, ...], problem: Callable[..., None]
    ) -> None:
        if isinstance(upstream, str):
            upstream = {"url": upstream}
        if not isinstance(upstream, dict) or "url" not in upstream:
            problem("upstream needs a url", 'upstream = { url = "https://..." }')
            return
        for key in upstream:
            if key not in UPSTREAM_KEYS:
                problem(f"unknown upstream key {key!r}", f"use {', '.join(UPSTREAM_KEYS)}")
        url = str(upstream["url"])
        if not url.startswith(("http://", "https://")):
            problem(f"upstream url {url!r} must start with http:// or https://")
        method = str(upstream.get("method", "GET")).upper()
        if method not in ("GET", "POST"):
            problem(f"upstream method {method!r} must be GET or POST")
        try:
            if float(upstream.get("timeout", 1.5)) <= 0:
                problem("upstream timeout must be positive")
        except (TypeError, ValueError):
            problem("upstream timeout must be a number of seconds")
        self._check_template(url, "upstream url", known, problem)

    def _check_shadowing(self) -> None:
        """Rules an earlier rule always beats can never answer: name them."""
        earlier: list[RuleSpec] = []
        for spec in self.specs:
            data = spec.data
            if data.get("python") or data.get("default"):
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
        b, a = before.data, later.data
        if not before.scope.covers(later.scope):
            return ""
        if before.pattern is not None and all(before.pattern.match(s) for s in _SAMPLES):
            return f"the rule at line {before.line} matches every message first"
        if b.get("keyword") is not None and a.get("keyword") is not None:
            before_words = {w.casefold() for w in [str(b["keyword"]), *_as_list(b.get("aliases"))]}
            later_words = {w.casefold() for w in [str(a["keyword"]), *_as_list(a.get("aliases"))]}
            if later_words <= before_words and (not b.get("only_keyword") or a.get("only_keyword")):
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
        uses_state = any("state" in s.data or "set_state" in s.data for s in self.specs)
        router = Router(sessions=uses_state or bool(app_router and app_router.uses_sessions))
        included_app = False
        for spec in self.specs:
            data = spec.data
            if data.get("python"):
                from exosms.loading import load_router

                if data["python"] == "app":  # the --app router, placed here
                    if app_router is not None:
                        router.include(app_router)
                        included_app = True
                else:
                    router.include(load_router(str(data["python"])))
                continue
            handler = _handler_for(spec, context)
            to = _as_list(data.get("to")) or None
            senders = _as_list(data.get("from")) or None
            state = data.get("state")
            if data.get("default"):
                router.default(_named(handler, spec.name))
            elif data.get("keyword") is not None:
                words = [str(data["keyword"]), *_as_list(data.get("aliases"))]
                router.keyword(
                    *words,
                    name=spec.name,
                    only=bool(data.get("only_keyword")),
                    to=to,
                    senders=senders,
                    state=state,
                )(handler)
            else:
                router.regex(
                    str(data["regex"]), name=spec.name, to=to, senders=senders, state=state
                )(handler)
        if app_router is not None and not included_app:
            router.include(app_router)
        return router


def _named(handler: Handler, name: str) -> Handler:
    handler.__name__ = name
    return handler


def _with_state(
    data: Mapping[str, Any], handler: Callable[[IncomingSms, Match], Any]
) -> Callable[[IncomingSms, Match], Any]:
    if "set_state" not in data:
        return handler
    new_state = str(data["set_state"]) or None
    ttl = parse_duration(data["state_ttl"]) if "state_ttl" in data else None

    def note(sms: IncomingSms) -> None:
        sms.session.state = new_state
        if ttl is not None:
            sms.session.ttl = ttl

    import inspect

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


def _handler_for(spec: RuleSpec, context: RulesContext) -> Handler:
    data = spec.data
    timezone = context.timezone
    fallback = data.get("fallback")
    if data.get("no_reply"):

        async def no_reply(sms: IncomingSms, match: Match) -> None:
            return None

        return _with_state(data, no_reply)
    if "reply" in data:
        template = str(data["reply"])

        async def reply(sms: IncomingSms, match: Match) -> str:
            return template.format_map(variables(sms, match, timezone))

        return _with_state(data, reply)
    if "handler" in data:
        target = _import(str(data["handler"]))
        return _with_state(data, target)
    upstream = data["upstream"]
    if isinstance(upstream, str):
        upstream = {"url": upstream}
    url = str(upstream["url"])
    method = str(upstream.get("method", "GET")).upper()
    # Leave room inside the reply deadline to store the answer and send it.
    timeout = max(0.05, min(float(upstream.get("timeout", 1.5)), context.deadline - 0.1))

    async def call_upstream(sms: IncomingSms, match: Match) -> str | Reply | None:
        values = variables(sms, match, timezone)
        try:
            return await fetch_reply(url, method, timeout, sms, values)
        except UpstreamError as error:
            if fallback is None:
                raise
            return Reply(str(fallback).format_map(values), error=str(error))

    return _with_state(data, call_upstream)


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
