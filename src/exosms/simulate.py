"""`exosms simulate`: call a reply URL the way Exotel does and judge the answer.

Every check names the rule Exotel's applet imposes, what the server did instead, and the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from exosms.dlt import TemplateRegistry, Verdict
from exosms.exotel.caller import AppletSms
from exosms.httpraw import ASGIApp, Exchange, fetch, fetch_asgi
from exosms.routing import Router
from exosms.segments import Segments, segment
from exosms.violations import ERROR, WARNING, Violation, exchange_violations, head_violations

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_PARTS",
    "ERROR",
    "WARNING",
    "AppTarget",
    "SmsCheck",
    "Target",
    "UrlTarget",
    "Violation",
    "app_target",
    "check_json",
    "check_sms",
    "many_json",
    "run_many",
]

SCHEMA = "exosms.simulate/1"
DEFAULT_BUDGET = 2.0  # seconds; Exotel's timeout is unpublished, sibling webhooks use 10-15 s
DEFAULT_MAX_PARTS = 7  # Exotel's documented multipart limit


class Target(Protocol):
    """Something that answers applet requests: a URL, or an app in this process."""

    @property
    def name(self) -> str: ...

    async def exchange(self, method: str, query: str) -> Exchange: ...


@dataclass
class UrlTarget:
    url: str
    timeout: float = 15.0

    @property
    def name(self) -> str:
        return self.url

    async def exchange(self, method: str, query: str) -> Exchange:
        return await fetch(self.url, method, query, timeout=self.timeout)


@dataclass
class AppTarget:
    app: ASGIApp
    path: str
    name: str = "app"

    async def exchange(self, method: str, query: str) -> Exchange:
        return await fetch_asgi(self.app, self.path, method, query)


@contextlib.asynccontextmanager
async def app_target(
    router: Router | str, config_file: Path | None = None, **overrides: Any
) -> AsyncIterator[AppTarget]:
    """An exosms app for ``router`` (or ``module:attr``), on a throwaway SQLite file."""
    import tempfile

    from exosms.config import load_settings
    from exosms.loading import load_router
    from exosms.settings_sections import (
        AuthSettings,
        ExotelSettings,
        ForwardingSettings,
        NotifySettings,
    )
    from exosms.store import open_database
    from exosms.store.migrate import upgrade_async
    from exosms.web.app import create_app

    name = f"--app {router}" if isinstance(router, str) else "app"
    if isinstance(router, str):
        router = load_router(router)
    with tempfile.TemporaryDirectory(prefix="exosms-simulate-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'simulate.db'}"
        settings = load_settings(config_file, **{**overrides, "database_url": url})
        # The router is under test, not the deployment: no webhook token or allowlist
        # between the simulator and it (`rules test` said "(none matched)" once `init` had
        # set a token), and nothing sent out for real (Exotel, notifications, forwarding).
        settings = settings.model_copy(
            update={
                "auth": AuthSettings(),
                "exotel": ExotelSettings(),
                "notify": NotifySettings(),
                "forwarding": ForwardingSettings(),
            }
        )
        await upgrade_async(url)
        app = create_app(settings, router, open_database(url))
        async with app.router.lifespan_context(app):
            yield AppTarget(app, settings.applet_path, name=name)


@dataclass
class SmsCheck:
    """One simulated SMS: the exchanges, the reply the customer would get, the verdicts."""

    sms: AppletSms
    head: Exchange
    get: Exchange
    repeat: Exchange | None
    violations: list[Violation] = field(default_factory=list)
    verdict: Verdict | None = None  # against the local DLT registry, when there is one

    @property
    def reply(self) -> str | None:
        if self.get.status != 200 or not self.get.body:
            return None
        return self.get.body.decode("utf-8", errors="replace")

    @property
    def segments(self) -> Segments | None:
        return segment(self.reply) if self.reply else None

    @property
    def ok(self) -> bool:
        return not any(v.severity == ERROR for v in self.violations)


async def check_sms(
    target: Target,
    sms: AppletSms,
    *,
    budget: float = DEFAULT_BUDGET,
    max_parts: int = DEFAULT_MAX_PARTS,
    repeat: bool = True,
    registry: TemplateRegistry | None = None,
) -> SmsCheck:
    """HEAD then GET (then the GET again, when ``repeat``), and every contract check."""
    query = sms.query()
    head = await target.exchange("HEAD", query)
    get = await target.exchange("GET", query)
    again = await target.exchange("GET", query) if repeat else None
    result = SmsCheck(sms, head, get, again)
    result.violations += exchange_violations(head, budget)
    result.violations += exchange_violations(get, budget)
    result.violations += head_violations(head, get)
    parts = result.segments
    if parts is not None and parts.count > max_parts:
        result.violations.append(
            Violation(
                "too-many-parts",
                ERROR,
                f"the reply needs {parts.count} SMS parts ({parts.encoding}, {parts.units} "
                f"units); Exotel sends at most {max_parts}.",
                "Shorten the reply; a single non-GSM character (₹, ’, Hindi) halves what fits.",
            )
        )
    if registry is not None and len(registry) and result.reply is not None:
        result.verdict = registry.match(result.reply)
        if not result.verdict.matched:
            result.violations.append(
                Violation(
                    "dlt-no-match",
                    ERROR,
                    f"the reply matches no approved DLT template: {result.verdict.reason}; "
                    "operators drop such SMS without telling anyone.",
                    "Make the reply text match a registered template exactly "
                    "(exosms dlt check shows where it differs).",
                )
            )
        for warning in result.verdict.warnings:
            result.violations.append(Violation("dlt-warning", WARNING, warning, "See docs/dlt.md."))
    if again is not None and (again.status, again.body) != (get.status, get.body):
        result.violations.append(
            Violation(
                "repeat-differs",
                WARNING,
                "a second GET for the same SmsSid got a different answer; if Exotel retries, "
                "the customer may get a different or a second reply.",
                "Store the reply per SmsSid and replay it (exosms does this for you).",
            )
        )
    return result


def exchange_json(ex: Exchange | None) -> dict[str, Any] | None:
    if ex is None:
        return None
    return {
        "status": ex.status,
        "headers": [[k, v] for k, v in ex.headers],
        "body": ex.body.decode("utf-8", errors="replace"),
        "chunked": ex.chunked,
        "extra_bytes": len(ex.extra),
        "ms": round(ex.elapsed_ms, 3),
    }


def check_json(target: Target, check: SmsCheck) -> dict[str, Any]:
    """The ``--json`` object for one SMS. Its schema is in docs/simulate.md."""
    parts = check.segments
    return {
        "schema": SCHEMA,
        "target": target.name,
        "sms": check.sms.as_dict(),
        "head": exchange_json(check.head),
        "get": exchange_json(check.get),
        "repeat": exchange_json(check.repeat),
        "reply": check.reply,
        "encoding": parts.encoding if parts else None,
        "units": parts.units if parts else 0,
        "parts": parts.count if parts else 0,
        "dlt": None
        if check.verdict is None
        else {
            "template_id": check.verdict.template_id,
            "reason": check.verdict.reason or None,
            "closest_template_id": check.verdict.closest_id,
            "warnings": list(check.verdict.warnings),
        },
        "violations": [v.as_dict() for v in check.violations],
        "ok": check.ok,
    }


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {
        "p50": round(statistics.median(ordered), 3),
        "p90": round(pick(0.90), 3),
        "p99": round(pick(0.99), 3),
        "max": round(ordered[-1], 3),
    }


async def run_many(
    target: Target,
    template: AppletSms,
    count: int,
    concurrency: int,
    *,
    budget: float,
    max_parts: int,
    registry: TemplateRegistry | None = None,
) -> list[SmsCheck]:
    """``count`` SMS with distinct SmsSids, at most ``concurrency`` in flight."""
    from dataclasses import replace

    from exosms.exotel.caller import new_sid

    gate = asyncio.Semaphore(concurrency)

    async def one() -> SmsCheck:
        async with gate:
            sms = replace(template, sms_sid=new_sid())
            return await check_sms(
                target, sms, budget=budget, max_parts=max_parts, repeat=False, registry=registry
            )

    return list(await asyncio.gather(*(one() for _ in range(count))))


def many_json(target: Target, checks: Sequence[SmsCheck]) -> dict[str, Any]:
    counts: dict[str, dict[str, Any]] = {}
    for check in checks:
        for v in check.violations:
            entry = counts.setdefault(v.code, {**v.as_dict(), "count": 0})
            entry["count"] += 1
    return {
        "schema": SCHEMA,
        "target": target.name,
        "sms_count": len(checks),
        "latency_ms": {
            "head": percentiles([c.head.elapsed_ms for c in checks]),
            "get": percentiles([c.get.elapsed_ms for c in checks]),
            "sms": percentiles([c.head.elapsed_ms + c.get.elapsed_ms for c in checks]),
        },
        "violations": list(counts.values()),
        "ok": all(c.ok for c in checks),
    }
