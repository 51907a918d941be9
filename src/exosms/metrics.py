"""What ``/metrics`` counts, with ``prometheus-client`` (docs/metrics.md).

One :class:`Metrics` per app, on its own registry: nothing is registered in the library's
global one, so two apps in one process (the tests) never collide. Under ``exosms serve``
the values live in files under ``PROMETHEUS_MULTIPROC_DIR`` (set up and removed by serve:
the one documented exception to "no global state", see :func:`multiprocess_dir`), so the
counts of every worker add up whichever worker answers the scrape.

``prometheus_client`` is imported when a :class:`Metrics` is made, not with this module: the
library picks file or memory values at its import, which must come after serve has set the
directory.

Every label takes its values from a short fixed list (an outcome, a guard, an endpoint's
name, a destination's name from the settings): never a path (the token is in it), a number
or a text a caller chose.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exosms.outcomes import Outcome
from exosms.result import Result

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format

# Seconds: an applet answer is milliseconds; Exotel gives up after a few seconds.
ANSWER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HANDLER_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

ENDPOINTS = (
    "applet",
    "webhook",
    "status",
    "inbox",
    "api",
    "healthz",
    "metrics",
    "index",
    "other",
)
SEND_RESULTS = ("sent", "retry", "unknown", "failed", "refused")
# Exotel's documented SMS statuses; anything else is counted as "other".
CALLBACK_STATUSES = ("queued", "sending", "submitted", "sent", "delivered", "failed", "failed_dnd")
DLT_VERDICTS = ("matched", "unmatched", "refused", "too_long")
GUARDS = ("opted_out", "sender_type", "loop", "rate_limited")  # exosms.guards' reasons
DATABASE_USERS = ("applet", "webhook", "status", "outbox", "healthz", "metrics")


def endpoint_of(path: str, applet_path: str) -> str:
    """The endpoint's name for ``path``: a label value from :data:`ENDPOINTS`."""
    if path == applet_path or path.startswith(applet_path + "/"):
        return "applet"
    if path == "/":
        return "index"
    head = path.split("/", 3)
    first = head[1] if len(head) > 1 else ""
    if first == "exotel" and len(head) > 2:
        return head[2] if head[2] in ("webhook", "status") else "other"
    if first in ("inbox", "api", "healthz", "metrics"):
        return first
    return "other"


def dlt_verdict(result: Result) -> str | None:
    """What the DLT gate said of the reply worked out (``None``: there was no reply, or the
    gate did not look)."""
    if result.outcome == Outcome.DLT_REFUSED:
        return "refused"
    if result.outcome == Outcome.TOO_LONG:
        return "too_long"
    if result.reply is None:
        return None
    if result.template_id is not None:
        return "matched"
    return "unmatched" if result.dlt_reason else None


class Metrics:
    """The counters and histograms the server keeps; the gauges (outbox depth, forwarding
    lag) are read from the database at each scrape (:mod:`exosms.web.metrics_page`)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.is_multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        r = self.registry
        self.requests = Counter(
            "exosms_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.answer_seconds = Histogram(
            "exosms_answer_seconds",
            "Time from request to answer, Exotel's applet and webhook calls.",
            ["endpoint"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.outcomes = Counter(
            "exosms_outcomes",
            "Messages answered, by outcome (replayed: a repeat).",
            ["outcome"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "exosms_handler_seconds",
            "Time the reply logic took (rules and handlers).",
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.dlt_verdicts = Counter(
            "exosms_dlt_verdicts", "The DLT gate's verdicts on replies.", ["verdict"], registry=r
        )
        self.guard_holds = Counter(
            "exosms_guard_holds",
            "Replies a guard allowed not to go, by guard.",
            ["guard"],
            registry=r,
        )
        self.sends = Counter(
            "exosms_sends", "SMS sent through Exotel's API, by result.", ["result"], registry=r
        )
        self.callbacks = Counter(
            "exosms_status_callbacks",
            "Exotel's status callbacks, by status.",
            ["status"],
            registry=r,
        )
        self.claims_retaken = Counter(
            "exosms_claims_retaken",
            "Messages taken over from a process that stopped while answering them.",
            registry=r,
        )
        self.database_errors = Counter(
            "exosms_database_errors",
            "Times the database did not answer, by where.",
            ["where"],
            registry=r,
        )
        # Children made once: a labelled look-up per SMS costs more than the increment.
        self._answer = {name: self.answer_seconds.labels(name) for name in ("applet", "webhook")}
        self._outcome = {
            o.value: self.outcomes.labels(o.value) for o in Outcome if o is not Outcome.PENDING
        }
        self._requests: dict[tuple[str, int], Any] = {}
        # Every known label value at zero from the start: a rate over a series that appears
        # only with its first event misses that event, and a dashboard shows "no data".
        for counter, values in (
            (self.guard_holds, GUARDS),
            (self.sends, SEND_RESULTS),
            (self.callbacks, (*CALLBACK_STATUSES, "other")),
            (self.database_errors, DATABASE_USERS),
        ):
            for value in values:
                counter.labels(value)
        self._verdict = {v: self.dlt_verdicts.labels(v) for v in DLT_VERDICTS}  # at 0 too

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """One HTTP request answered."""
        child = self._requests.get((endpoint, status))
        if child is None:
            child = self._requests[(endpoint, status)] = self.requests.labels(endpoint, status)
        child.inc()
        timer = self._answer.get(endpoint)
        if timer is not None:
            timer.observe(seconds)

    def answered(self, result: Result) -> None:
        """A message's answer stored (once per message)."""
        self._outcome[result.outcome].inc()
        if result.handler_ms is not None:
            self.handler_seconds.observe(result.handler_ms / 1000)
        verdict = dlt_verdict(result)
        if verdict is not None:
            self._verdict[verdict].inc()
        if result.guard is not None:
            self.guard_holds.labels(result.guard).inc()

    def replayed(self) -> None:
        """A repeated request answered with the stored answer."""
        self._outcome[Outcome.REPLAYED].inc()

    def retaken(self) -> None:
        """A message claimed by a process that stopped was taken over (and answered) here."""
        self.claims_retaken.inc()

    def sent(self, result: str) -> None:
        """One send through Exotel's API ended so (:data:`SEND_RESULTS`)."""
        self.sends.labels(result).inc()

    def callback(self, status: str) -> None:
        """One status callback from Exotel."""
        status = status.strip().lower().replace("-", "_")  # some docs write failed-dnd
        self.callbacks.labels(status if status in CALLBACK_STATUSES else "other").inc()

    def database_error(self, where: str) -> None:
        """The database did not answer ``where`` (``applet``, ``webhook``, ``outbox``...)."""
        self.database_errors.labels(where).inc()

    def exposition(self, gauges: Iterable[Metric]) -> bytes:
        """The text Prometheus scrapes: every process's counts (in multiprocess mode) and
        ``gauges``, read now."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if self.is_multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        now = _Fixed(list(gauges))
        registry.register(now)
        try:
            return bytes(generate_latest(registry))
        finally:
            registry.unregister(now)


class _Fixed:
    """A collector of metric families read before the scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families

    def describe(self) -> list[Metric]:
        return []  # the names change with the settings; never checked for duplicates


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[Path]:
    """A directory for every worker's metric files, in ``PROMETHEUS_MULTIPROC_DIR`` while
    the block runs; removed after. One the operator set is used as it is, its old files
    (a stopped server's counts) removed first."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="exosms-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
