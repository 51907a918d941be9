"""DLT content templates: parsing, matching, rendering (India's TRAI TCCCPR rules).

An SMS is delivered only when its text matches a registered template exactly: the static
text character for character (only CRLF and LF are treated alike), and each ``{#var#}`` by at
most ``var_max_len`` characters without a newline. Typed tags (``{#numeric#}``, ``{#url#}``,
...) also check what they hold; URLs and call-back numbers must be whitelisted. Anything else
in braces (``{#VAR#}``, ``{# var #}``, ``##var##``) is literal text, as operators treat it.

Why one module (about 430 lines): the template grammar, its compiled form, the registry and
the first-difference report are one matcher (the index that finds candidates is
:mod:`exosms.dlt_index`), tested together against the published vectors; split, each part
would expose the others' internals.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from exosms.dlt_index import TemplateIndex
from exosms.numbers import normalise

__all__ = [
    "Template",
    "TemplateError",
    "TemplateRegistry",
    "active_registry",
    "using",
]  # public: see exosms/__init__.py

VAR_MAX_LEN = 30  # DLT limit per {#var#} (AWS, MSG91, Kaleyra, eGov docs)

# Tag -> the kind of value it holds. Short forms are what 2026 portal exports use.
TAGS = {
    "var": "var",
    "numeric": "numeric",
    "num": "numeric",
    "alphanumeric": "alphanumeric",
    "alp": "alphanumeric",
    "url": "url",
    "urlott": "url",
    "uro": "url",
    "urg": "url",
    "cbn": "cbn",
    "email": "email",
}
_TAG = re.compile(r"\{#(" + "|".join(sorted(TAGS, key=len, reverse=True)) + r")#\}")
_URL_IN_TEXT = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_KIND_PATTERN = {
    "var": r"[^\n]{{0,{n}}}",
    "numeric": r"[0-9]{{1,{n}}}",
    "alphanumeric": r"[A-Za-z0-9]{{1,{n}}}",
    "email": r"[^\s@]{{1,{n}}}@[^\s@]+\.[^\s@]+",
    "cbn": r"\+?[0-9][0-9 \-]{{4,{n}}}",
}
CLOSEST_POOL = 50  # templates sharing the text's rarest static windows, ranked for a miss
CLOSEST_SHORTLIST = 12  # of them, walked character by character to explain the miss


class TemplateError(ValueError):
    """A template cannot be used or rendered; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Slot:
    kind: str  # var | numeric | alphanumeric | url | cbn | email
    tag: str  # as written: var, num, urlott, ...


@dataclass(frozen=True, slots=True)
class Template:
    """One registered DLT content template."""

    template_id: str
    content: str
    entity_id: str = ""
    name: str = ""
    headers: tuple[str, ...] = ()
    category: str = ""
    status: str = "approved"
    url_whitelist: tuple[str, ...] = ()
    cbn_whitelist: tuple[str, ...] = ()

    @property
    def is_approved(self) -> bool:
        """Whether the DLT portal's status lets the template be used."""
        return self.status.strip().lower() in ("approved", "active", "")


Token = str | Slot


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n")


def tokenize(content: str) -> list[Token]:
    """Split template text into static strings and variable slots."""
    tokens: list[Token] = []
    text = _normalise_newlines(content)
    position = 0
    for found in _TAG.finditer(text):
        if found.start() > position:
            tokens.append(text[position : found.start()])
        tag = found.group(1)
        tokens.append(Slot(TAGS[tag], tag))
        position = found.end()
    if position < len(text):
        tokens.append(text[position:])
    return tokens


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of checking a text against the registry."""

    template_id: str | None
    reason: str  # "" when matched
    closest_id: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return self.template_id is not None

    def describe(self) -> str:
        if self.matched:
            extra = f" ({'; '.join(self.warnings)})" if self.warnings else ""
            return f"matches template {self.template_id}{extra}"
        return self.reason


@dataclass
class CompiledTemplate:
    template: Template
    tokens: list[Token]
    source: str  # the regular expression; compiled on first use, so loading stays fast
    static_len: int
    var_max_len: int
    typed_max_len: int

    _pattern: re.Pattern[str] | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        if self._pattern is None:
            self._pattern = re.compile(self.source, re.DOTALL)
        return self._pattern

    @property
    def slots(self) -> list[Slot]:
        return [t for t in self.tokens if isinstance(t, Slot)]


def _slot_pattern(slot: Slot, template: Template, var_max: int, typed_max: int) -> str:
    if slot.kind == "var":
        return f"({_KIND_PATTERN['var'].format(n=var_max)})"
    if slot.kind == "url":
        if template.url_whitelist:
            prefixes = "|".join(re.escape(u) for u in template.url_whitelist)
            return rf"((?:{prefixes})\S*)"
        return r"((?:https?://|www\.)\S+)"  # no whitelist known: any URL, with a warning
    return f"({_KIND_PATTERN[slot.kind].format(n=typed_max)})"


def compile_template(
    template: Template, *, var_max_len: int = VAR_MAX_LEN, typed_max_len: int = VAR_MAX_LEN
) -> CompiledTemplate:
    tokens = tokenize(template.content)
    parts = []
    for token in tokens:
        if isinstance(token, Slot):
            parts.append(_slot_pattern(token, template, var_max_len, typed_max_len))
        else:
            parts.append(re.escape(token))
    statics = [t for t in tokens if isinstance(t, str)]
    return CompiledTemplate(
        template=template,
        tokens=tokens,
        source="".join(parts),
        static_len=sum(len(s) for s in statics),
        var_max_len=var_max_len,
        typed_max_len=typed_max_len,
    )


def _check_values(
    compiled: CompiledTemplate, values: Sequence[str]
) -> tuple[str | None, list[str]]:
    """Checks a regex cannot make: URL and call-back number lengths and whitelists."""
    warnings: list[str] = []
    template = compiled.template
    for slot, value in zip(compiled.slots, values, strict=True):
        if slot.kind == "url":
            if len(value) > compiled.typed_max_len and template.url_whitelist == ():
                return f"{{#{slot.tag}#}} holds {len(value)} characters", warnings
            if not template.url_whitelist:
                warnings.append(f"template {template.template_id} has no URL whitelist to check")
        elif slot.kind == "cbn":
            if template.cbn_whitelist:
                allowed = {normalise(n) for n in template.cbn_whitelist}
                if normalise(value) not in allowed:
                    return f"call-back number {value!r} is not whitelisted", warnings
        elif slot.kind == "var" and _URL_IN_TEXT.search(value):
            warnings.append(
                f"a URL in a plain {{#var#}} ({value!r}) is likely blocked: "
                "register it as {#url#}"
            )
    return None, warnings


def _common_prefix(token: str, text: str, position: int) -> int:
    """How many leading characters of ``token`` ``text`` has at ``position`` (fewer than
    all), found by halving with ``startswith``: a long static part costs a few calls."""
    low, high = 0, min(len(token) - 1, len(text) - position)
    while low < high:
        middle = (low + high + 1) // 2
        if text.startswith(token[:middle], position):
            low = middle
        else:
            high = middle - 1
    return low


def first_difference(compiled: CompiledTemplate, text: str) -> tuple[int, str]:
    """How far ``text`` follows the template, and a sentence saying where it departs."""
    position = 0
    tokens = compiled.tokens
    for index, token in enumerate(tokens):
        if isinstance(token, str):
            if text.startswith(token, position):  # the usual case, in one call
                position += len(token)
                continue
            same = _common_prefix(token, text, position)
            at, expected = position + same, token[same]
            if at >= len(text):
                return at, f"differs at character {at + 1}: expected {expected!r}, got end of text"
            return at, f"differs at character {at + 1}: expected {expected!r}, got {text[at]!r}"
        limit = compiled.var_max_len if token.kind == "var" else compiled.typed_max_len
        run = 1
        for later in tokens[index + 1 :]:
            if not isinstance(later, Slot):
                break
            run += 1
        following = next((t for t in tokens[index + 1 :] if isinstance(t, str)), None)
        end = len(text)
        if following is not None:
            # Where does the next static text start? Where it appears whole, or else where
            # its longest prefix appears within reach: the static comparison that follows
            # then says exactly which character differs.
            whole = text.find(following, position)
            if whole >= 0:
                end = whole
            else:
                reach = position + limit * run if token.kind != "url" else len(text)
                for size in range(len(following) - 1, 0, -1):
                    found = text.find(following[:size], position, reach + size)
                    if found >= 0:
                        end = found
                        break
        value = text[position:end]
        if "\n" in value and token.kind == "var":
            at = position + value.index("\n")
            return at, f"differs at character {at + 1}: a {{#var#}} cannot hold a newline"
        whitelist = compiled.template.url_whitelist
        if token.kind == "url" and whitelist and not value.startswith(whitelist):
            return position, (
                f"differs at character {position + 1}: URL {value!r} is not whitelisted "
                f"for template {compiled.template.template_id}"
            )
        if token.kind != "url" and len(value) > limit * run:
            at = position + limit * run
            return at, (
                f"differs at character {at + 1}: {{#{token.tag}#}} holds at most {limit} "
                f"characters, got {len(value)}"
            )
        if token.kind in ("numeric", "alphanumeric") and not re.fullmatch(
            _KIND_PATTERN[token.kind].format(n=limit * run), value
        ):
            return position, (
                f"differs at character {position + 1}: {{#{token.tag}#}} cannot hold {value!r}"
            )
        position = end
    if position < len(text):
        return position, (
            f"differs at character {position + 1}: expected end of text, got {text[position]!r}"
        )
    return position, "matches the text but a value fails its check"


class TemplateRegistry:
    """Approved templates, indexed so that finding the match for a text is fast."""

    def __init__(
        self,
        templates: Iterable[Template] = (),
        *,
        var_max_len: int = VAR_MAX_LEN,
        typed_max_len: int = VAR_MAX_LEN,
    ) -> None:
        self.var_max_len = var_max_len
        self.typed_max_len = typed_max_len
        self._by_id: dict[str, CompiledTemplate] = {}
        self._by_name: dict[str, CompiledTemplate] = {}
        self._index: TemplateIndex[str] = TemplateIndex()  # by template id
        for template in templates:
            self.add(template)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Template]:
        return (c.template for c in self._by_id.values())

    def add(self, template: Template) -> None:
        """Add (or replace, by id) an approved template; others are ignored."""
        if not template.is_approved:
            return
        if template.template_id in self._by_id:
            self._remove(self._by_id[template.template_id])
        compiled = compile_template(
            template, var_max_len=self.var_max_len, typed_max_len=self.typed_max_len
        )
        self._by_id[template.template_id] = compiled
        if template.name:
            self._by_name[template.name] = compiled
        self._index.add(template.template_id, (t for t in compiled.tokens if isinstance(t, str)))

    def _remove(self, compiled: CompiledTemplate) -> None:
        self._index.remove(compiled.template.template_id)

    def get(self, id_or_name: str) -> CompiledTemplate | None:
        """The template with this id or name, if registered."""
        return self._by_id.get(id_or_name) or self._by_name.get(id_or_name)

    def match(self, text: str) -> Verdict:
        """The most specific approved template ``text`` matches, or why none does."""
        normalised = _normalise_newlines(text)
        best: tuple[CompiledTemplate, list[str]] | None = None
        rejection = ""
        ids, present = self._index.lookup(normalised)
        for compiled in (self._by_id[i] for i in ids):
            found = compiled.pattern.fullmatch(normalised)
            if found is None:
                continue
            problem, warnings = _check_values(compiled, found.groups())
            if problem is not None:
                rejection = f"template {compiled.template.template_id}: {problem}"
                continue
            if best is None or compiled.static_len > best[0].static_len:
                best = (compiled, warnings)
        if best is not None:
            return Verdict(best[0].template.template_id, "", warnings=tuple(best[1]))
        if not self._by_id:
            return Verdict(None, "no approved DLT templates are registered")
        near = self._index.near(present, CLOSEST_POOL)
        pool = [self._by_id[i] for i in near] or list(self._by_id.values())[:CLOSEST_SHORTLIST]
        if len(pool) > CLOSEST_SHORTLIST:
            # Walking every template is slow; the ones sharing the most static text with
            # the reply are the only plausible "closest", so walk just those.
            pool = sorted(
                pool,
                key=lambda c: sum(
                    len(s) for s in c.tokens if isinstance(s, str) and s in normalised
                ),
                reverse=True,
            )[:CLOSEST_SHORTLIST]
        closest, (_, where) = max(
            ((c, first_difference(c, normalised)) for c in pool),
            key=lambda pair: (pair[1][0], pair[0].static_len),
        )
        reason = (
            rejection or f"no template matches; closest is {closest.template.template_id}: {where}"
        )
        return Verdict(None, reason, closest_id=closest.template.template_id)

    def render(self, id_or_name: str, *args: str, **values: str) -> str:
        """Fill a template's variables in order; raise :class:`TemplateError` on a bad value."""
        compiled = self.get(id_or_name)
        if compiled is None:
            raise TemplateError(f"no approved DLT template {id_or_name!r} is registered")
        given = [str(v) for v in (*args, *values.values())]
        slots = compiled.slots
        if len(given) != len(slots):
            raise TemplateError(
                f"template {compiled.template.template_id} has {len(slots)} variable(s), "
                f"{len(given)} value(s) given"
            )
        out = []
        values_iter = iter(given)
        for number, token in enumerate(compiled.tokens):
            if isinstance(token, str):
                out.append(token)
                continue
            value = next(values_iter)
            limit = self.var_max_len if token.kind == "var" else self.typed_max_len
            pattern = _slot_pattern(token, compiled.template, limit, limit)
            if not re.fullmatch(pattern, value) or (token.kind != "url" and len(value) > limit):
                raise TemplateError(
                    f"template {compiled.template.template_id}: value {value!r} does not fit "
                    f"{{#{token.tag}#}} (variable {number + 1}: at most {limit} characters"
                    + (", no newline)" if token.kind == "var" else f", a valid {token.kind})")
                )
            out.append(value)
        text = "".join(out)
        verdict = self.match(text)
        if verdict.template_id != compiled.template.template_id and not verdict.matched:
            raise TemplateError(f"rendered text does not match: {verdict.reason}")
        return text


_active: ContextVar[TemplateRegistry | None] = ContextVar("exosms_dlt_registry", default=None)


def active_registry() -> TemplateRegistry | None:
    """The registry of the request being answered (set by the engine), if any."""
    return _active.get()


@contextlib.contextmanager
def using(registry: TemplateRegistry) -> Iterator[TemplateRegistry]:
    """Make ``registry`` the one ``Reply.template`` renders with (tests, scripts)."""
    token = _active.set(registry)
    try:
        yield registry
    finally:
        _active.reset(token)


def set_active(registry: TemplateRegistry | None) -> None:
    _active.set(registry)
