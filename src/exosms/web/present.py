"""How stored messages are shown: reasons in words, times in the display zone, chart shapes,
and export rows that a spreadsheet cannot execute."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from exosms.outcomes import Outcome
from exosms.store.base import StoredMessage
from exosms.store.inbox import Delivery
from exosms.store.stats import Stats

GUARD_REASONS = {
    "opted_out": "the sender opted out (STOP)",
    "rate_limited": "rate limit: too many replies to this sender",
    "loop": "loop guard: the same text again, probably another auto-responder",
    "sender_type": "the sender is not a phone number (short code or header)",
}
OUTCOME_LABELS: dict[str, str] = {
    Outcome.REPLIED: "replied",
    Outcome.NO_REPLY: "no reply",
    Outcome.SUPPRESSED: "held back by a guard",
    Outcome.FALLBACK_TIMEOUT: "fallback: handler too slow",
    Outcome.HANDLER_NOT_STARTED: "fallback: handler could not start",
    Outcome.FALLBACK_ERROR: "fallback: handler failed",
    Outcome.DLT_REFUSED: "DLT refused",
    Outcome.TOO_LONG: "too long",
    Outcome.OPTED_OUT: "opt-out confirmed",
    Outcome.OPTED_IN: "opt-in confirmed",
    Outcome.PENDING: "not answered",
    Outcome.REPLAYED: "answered again (a repeat)",
}
OUTCOME_COLOURS: dict[str, str] = {
    Outcome.REPLIED: "#2e7d32",
    Outcome.NO_REPLY: "#90a4ae",
    Outcome.SUPPRESSED: "#8e24aa",
    Outcome.FALLBACK_TIMEOUT: "#ef6c00",
    Outcome.HANDLER_NOT_STARTED: "#f57f17",
    Outcome.FALLBACK_ERROR: "#d84315",
    Outcome.DLT_REFUSED: "#c62828",
    Outcome.TOO_LONG: "#6d4c41",
    Outcome.OPTED_OUT: "#455a64",
    Outcome.OPTED_IN: "#00838f",
    Outcome.PENDING: "#fbc02d",
    Outcome.REPLAYED: "#9e9e9e",
}


TAKEN_OVER = "answered by another process after the first stopped: the handler may have run twice"


def why(message: StoredMessage) -> str:
    """In words: why this message got the answer it got (empty for a plain reply)."""
    reason = _why_outcome(message)
    if message.takeovers:
        return f"{reason}; {TAKEN_OVER}" if reason else TAKEN_OVER
    return reason


def _why_outcome(message: StoredMessage) -> str:
    outcome = message.outcome if message.state == "done" else "pending"
    if outcome == "no_reply":
        if message.rule is None:
            return "no rule matched"
        return f"rule {message.rule} chose not to reply"
    if outcome == "suppressed":
        return GUARD_REASONS.get(message.guard or "", f"held back: {message.guard}")
    if outcome == "fallback_timeout":
        return f"{message.error or 'handler too slow'}: the fallback was sent"
    if outcome == "handler_not_started":
        return f"{message.error or 'no free handler slot'}: the fallback was sent"
    if outcome == "fallback_error":
        return f"handler failed ({message.error or 'error'}): the fallback was sent"
    if outcome == "dlt_refused":
        sent = "the fallback was sent" if message.reply else "nothing was sent"
        return f"the reply matched no approved template ({message.dlt_reason or 'none'}): {sent}"
    if outcome == "too_long":
        sent = "the fallback was sent" if message.reply else "nothing was sent"
        return f"{message.error or 'reply too long'}: {sent}"
    if outcome == "pending":
        return "not answered: the server stopped or is still working on it"
    return ""


def outcome_of(message: StoredMessage) -> str:
    return (message.outcome or "pending") if message.state == "done" else "pending"


def dlt_verdict(message: StoredMessage) -> str:
    """matched (template id), warned (sent without a template), refused, or unchecked."""
    if message.outcome == "dlt_refused":
        return "refused"
    if message.dlt_template_id:
        return "matched"
    if message.dlt_reason:
        return "warned"
    return "unchecked"


class Clock:
    """Formats epoch seconds in the display time zone."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone

    def at(self, epoch: float | None, *, seconds: bool = False) -> str:
        if epoch is None:
            return ""
        moment = datetime.fromtimestamp(epoch, self.zone)
        return moment.strftime("%d %b %Y %H:%M:%S" if seconds else "%d %b %H:%M")

    def iso(self, epoch: float | None) -> str:
        if epoch is None:
            return ""
        return datetime.fromtimestamp(epoch, self.zone).isoformat(timespec="milliseconds")

    def utc_offset(self) -> float:
        offset = datetime.now(self.zone).utcoffset()
        return offset.total_seconds() if offset is not None else 0.0


def message_json(
    message: StoredMessage, delivery: Delivery | None = None, zone: tzinfo = UTC
) -> dict[str, Any]:
    """A message as the JSON API and JSONL export give it."""
    data = asdict(message)
    data["outcome"] = outcome_of(message)
    data["why"] = why(message) or None
    data["dlt_verdict"] = dlt_verdict(message)
    data["received_at_iso"] = datetime.fromtimestamp(message.received_at, zone).isoformat()
    if delivery is not None:
        data["delivery"] = asdict(delivery)
    return data


EXPORT_FIELDS = (
    "id",
    "sms_sid",
    "received_at_iso",
    "sender",
    "recipient",
    "body",
    "reply",
    "outcome",
    "why",
    "rule",
    "dlt_verdict",
    "dlt_template_id",
    "dlt_reason",
    "reply_encoding",
    "reply_parts",
    "handler_ms",
    "fetch_count",
    "late_reply",
)
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a cell starting with = + - @ (or a tab or a
    line break) gets a leading apostrophe (OWASP's advice). A plain number such as
    +919876543210 is left alone: it cannot carry a formula."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[tuple[float, float, str, str]]  # x, y, text, text-anchor
    gridlines: list[tuple[float, str]]  # y, label


def hourly_chart(stats: Stats, clock: Clock, width: int = 840, height: int = 220) -> Chart:
    """Messages per hour, stacked by outcome: one bar per hour of the last 7 days."""
    pad_left, pad_bottom, pad_top = 40.0, 24.0, 8.0
    count = len(stats.hours) or 1
    totals = [sum(series[i] for series in stats.per_hour.values()) for i in range(count)]
    top = max(totals, default=0) or 1
    scale = (height - pad_bottom - pad_top) / top
    step = (width - pad_left) / count
    bars: list[Bar] = []
    order = [name for name in OUTCOME_COLOURS if name in stats.per_hour] + [
        name for name in stats.per_hour if name not in OUTCOME_COLOURS
    ]
    for i, start in enumerate(stats.hours):
        base = height - pad_bottom
        for name in order:
            value = stats.per_hour[name][i]
            if not value:
                continue
            h = value * scale
            base -= h
            bars.append(
                Bar(
                    x=pad_left + i * step,
                    y=base,
                    width=max(step - 1, 1),
                    height=h,
                    colour=OUTCOME_COLOURS.get(name, "#607d8b"),
                    title=f"{clock.at(start)}: {value} {OUTCOME_LABELS.get(name, name)}",
                )
            )
    labels = [
        (pad_left + i * step, float(height - 6), clock.at(start)[:6], "start")
        for i, start in enumerate(stats.hours)
        if i % 24 == 0
    ]
    grid = [(height - pad_bottom - top * f * scale, f"{round(top * f):,}") for f in (0.5, 1.0)]
    return Chart(width, height, bars, labels, grid)


def horizontal_bars(
    items: list[tuple[str, int]], *, colours: dict[str, str] | None = None, width: int = 400
) -> Chart:
    """One labelled horizontal bar per item, longest first (outcomes, keywords)."""
    row, label_width = 30.0, 160.0
    top = max((value for _, value in items), default=0) or 1
    bars = []
    labels = []
    for i, (name, value) in enumerate(items):
        length = (width - label_width - 60) * value / top
        colour = (colours or {}).get(name, "#1565c0")
        label = OUTCOME_LABELS.get(name, name) if colours else name
        bars.append(
            Bar(label_width, i * row + 4, max(length, 1), row - 8, colour, f"{label}: {value:,}")
        )
        # A long label (a Hindi first word, a rule name) is cut to fit; the bar's title has
        # it whole.
        short = label if len(label) <= 20 else label[:19] + "…"
        labels.append((label_width - 6, i * row + row / 2 + 5, short, "end"))
        labels.append((label_width + length + 6, i * row + row / 2 + 5, f"{value:,}", "start"))
    return Chart(width, int(row * max(len(items), 1)), bars, labels, [])


def latencies(values: dict[str, float | None]) -> list[tuple[str, int]]:
    """The time-to-answer percentiles known, in whole milliseconds, for a bar chart."""
    return [(name, round(value)) for name, value in values.items() if value is not None]
