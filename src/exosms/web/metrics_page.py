"""``GET /metrics``: Prometheus' text, for a scraper holding the ``[metrics] token``.

The counters come from :class:`exosms.metrics.Metrics`; the outbox's depth and each
forwarding destination's backlog and lag are read from the database at the scrape, so they
are right whichever process (a server worker, ``exosms forward``) did the work.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exosms.metrics import CONTENT_TYPE, Metrics
from exosms.store import StoreUnavailable
from exosms.store.event_reports import EventReports
from exosms.store.outbox_view import OutboxView
from exosms.web.pages import text_response

log = logging.getLogger("exosms")


class MetricsPage:
    """``/metrics``, behind ``Authorization: Bearer <[metrics] token>``."""

    def __init__(
        self,
        metrics: Metrics,
        token: SecretStr,
        outbox: OutboxView,
        reports: EventReports,
        destinations: Sequence[str],
    ) -> None:
        self.metrics = metrics
        self._expected = b"Bearer " + token.get_secret_value().encode()
        self.outbox = outbox
        self.reports = reports
        self.destinations = tuple(destinations)

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.scrape, methods=["GET"])]

    async def scrape(self, request: Request) -> Response:
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, self._expected):
            return Response(
                "send Authorization: Bearer <[metrics] token>\n",
                status_code=401,
                headers={"content-type": "text/plain", "www-authenticate": "Bearer"},
            )
        try:
            gauges = await self._gauges()
        except StoreUnavailable as error:
            log.error("metrics: database unavailable: %s", error)
            self.metrics.database_error("metrics")
            return text_response(503, "database unavailable\n")
        body = self.metrics.exposition(gauges)
        return Response(body, headers={"content-type": CONTENT_TYPE})

    async def _gauges(self) -> list[Metric]:
        depth = GaugeMetricFamily(
            "exosms_outbox_messages", "SMS in the outbox waiting, by state.", labels=["state"]
        )
        for state, count in (await self.outbox.waiting_by_state()).items():
            depth.add_metric([state], count)
        families: list[Metric] = [depth]
        if not self.destinations:
            return families
        lag = GaugeMetricFamily(
            "exosms_forwarding_lag_seconds",
            "Age of the oldest event not yet delivered, per destination (0: none waiting).",
            labels=["destination"],
        )
        pending = GaugeMetricFamily(
            "exosms_forwarding_pending", "Events waiting, per destination.", labels=["destination"]
        )
        dead = GaugeMetricFamily(
            "exosms_forwarding_dead",
            "Events dead-lettered, per destination.",
            labels=["destination"],
        )
        now = time.time()
        for health in await self.reports.health(self.destinations):
            oldest = health.oldest_pending_at
            lag.add_metric([health.destination], max(0.0, now - oldest) if oldest else 0.0)
            pending.add_metric([health.destination], health.pending)
            dead.add_metric([health.destination], health.dead)
        return [*families, lag, pending, dead]
