"""Forwarding for people and scripts: the inbox page /inbox/forwarding, and /api/events,
/api/forwarding and POST /api/events/replay (docs/forwarding.md)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exosms.forwarding.setup import route_of
from exosms.settings_sections import EVENT_TYPES, DestinationSettings
from exosms.store.events import EventStore
from exosms.web.api import Api, json_error, json_ok
from exosms.web.filters import MAX_ID, BadFilter, parse_int
from exosms.web.inbox import Inbox
from exosms.web.login import Login


class Forwarding:
    """Each destination's health and the newest events, as a page and as JSON."""

    def __init__(
        self,
        inbox: Inbox,
        api: Api,
        events: EventStore,
        destinations: Sequence[DestinationSettings],
    ) -> None:
        self.inbox = inbox
        self.api = api
        self.events = events
        self.destinations = {d.name: d for d in destinations}

    async def health(self) -> list[dict[str, Any]]:
        """Each destination: kind, undelivered, dead, delivered, lag, last error."""
        now = time.time()
        found = await self.events.reports.health(list(self.destinations))
        return [
            {
                "name": h.destination,
                "kind": self.destinations[h.destination].kind,
                "pending": h.pending,
                "dead": h.dead,
                "delivered": h.delivered,
                "lag_seconds": round(now - h.oldest_pending_at, 3) if h.oldest_pending_at else 0.0,
                "last_delivered_at": h.last_delivered_at,
                "last_error": h.last_error,
            }
            for h in found
        ]

    async def recent(self, request: Request) -> tuple[list[dict[str, Any]], str | None]:
        """The newest events (``?limit=``, ``?before=``, ``?type=``) and the next page's URL."""
        params = request.query_params
        limit = parse_int(params, "limit", 50, 1, 500) or 50
        before = parse_int(params, "before", None, 1, MAX_ID)
        kind = params.get("type", "")
        if kind and kind not in EVENT_TYPES:
            raise BadFilter(f"type: {kind[:40]!r} is not one of {', '.join(EVENT_TYPES)}")
        rows = await self.events.reports.recent(limit, before=before, kind=kind or None)
        events = [
            {
                "pk": pk,
                "id": event_id,
                "type": type_,
                "sender": sender,
                "time": at,
                "forwards": [
                    {"destination": d, "state": s, "attempts": a, "last_error": e}
                    for d, s, a, e in forwards
                ],
            }
            for pk, event_id, type_, sender, at, forwards in rows
        ]
        query = f"limit={limit}" + (f"&type={kind}" if kind else "")
        next_page = f"/api/events?{query}&before={rows[-1][0]}" if len(rows) == limit else None
        return events, next_page

    async def page(self, request: Request, login: Login) -> Response:
        """/inbox/forwarding."""
        events, _ = await self.recent(request)
        return self.inbox.page(
            "forwarding.html",
            login=login,
            destinations=await self.health(),
            events=events,
        )

    async def api_health(self, request: Request) -> Response:
        """GET /api/forwarding."""
        return json_ok({"destinations": await self.health()})

    async def api_events(self, request: Request) -> Response:
        """GET /api/events."""
        events, next_page = await self.recent(request)
        return json_ok({"events": events, "next": next_page})

    async def api_replay(self, request: Request) -> Response:
        """POST /api/events/replay: ``{"since": ..., "until"?, "destinations"?, "types"?}``."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return json_error(415, "send a JSON object (content-type: application/json)")
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return json_error(400, "the body is not valid JSON")
        if not isinstance(data, dict):
            return json_error(400, 'send {"since": "2026-12-01T09:00:00+05:30"}')
        try:
            since = _moment(data.get("since"), "since")
            until = _moment(data["until"], "until") if "until" in data else None
            names = _names(data.get("destinations", []), "destinations", self.destinations)
            types = _names(data.get("types", []), "types", EVENT_TYPES)
        except ValueError as error:
            return json_error(400, str(error))

        chosen = (
            [self.destinations[n] for n in names] if names else list(self.destinations.values())
        )
        if not chosen:
            return json_error(409, "no destinations: set [[forwarding.destinations]] first")
        queued = await self.events.replay([route_of(d) for d in chosen], since, until, types)
        return json_ok({"queued": queued, "destinations": [d.name for d in chosen]})

    def routes(self) -> list[BaseRoute]:
        """The page's and the API's routes."""
        page, api = self.inbox.guarded, self.api.guarded
        return [
            Route("/inbox/forwarding", page(self.page), methods=["GET"]),
            Route("/api/forwarding", api(self.api_health), methods=["GET"]),
            Route("/api/events", api(self.api_events), methods=["GET"]),
            Route("/api/events/replay", api(self.api_replay), methods=["POST"]),
        ]


def _moment(value: object, name: str) -> float:
    """Epoch seconds, or an ISO 8601 date-time with its offset."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name}: give epoch seconds or an ISO date-time with its offset")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}: {value[:40]!r} is not an ISO date-time") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{name}: give the offset too (e.g. +05:30)")
        seconds = parsed.timestamp()
    else:
        raise ValueError(f"{name}: give epoch seconds or an ISO date-time with its offset")
    if not math.isfinite(seconds):
        raise ValueError(f"{name}: not a finite number of seconds")
    return seconds  # any moment: events older than the oldest kept are simply not there


def _names(value: object, name: str, known: Sequence[str] | dict[str, Any]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: a list of names")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ValueError(f"{name}: {unknown[0][:40]!r} is not one of {', '.join(known) or 'none'}")
    return list(value)
