"""The ASGI application factory. Nothing connects at import time: the store opens in the
app's lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.routing import Router as StarletteRouter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exosms.config import Settings, load_settings, resolve_config_file
from exosms.engine import ReplyEngine
from exosms.gate import DltGate
from exosms.guards import Guards
from exosms.logs import quieten_logging_overhead
from exosms.metrics import Metrics, endpoint_of
from exosms.routing import Router
from exosms.rules import router_from_settings, rules_source
from exosms.store import Database, Store, open_database
from exosms.web.api import Api
from exosms.web.applet import AppletEndpoint
from exosms.web.assigning import Assigning
from exosms.web.auth import Gatekeeper
from exosms.web.compose import Composer
from exosms.web.dlt_page import DltPage
from exosms.web.forwarding import Forwarding
from exosms.web.inbox import Inbox
from exosms.web.optouts_page import OptOutsPage
from exosms.web.outbox_page import OutboxPage
from exosms.web.pages import Pages, text_response
from exosms.web.replying import Replying
from exosms.web.running import Running
from exosms.web.users_page import UsersPage
from exosms.web.webhooks import status_endpoint, webhook_endpoint

log = logging.getLogger("exosms")


@dataclass(frozen=True, slots=True)
class Direct:
    """An endpoint answered before the middleware stack and router, at ``path`` and at
    ``path/<token>``, for these methods (others go on to the router, which answers 405)."""

    endpoint: ASGIApp
    methods: frozenset[str]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoint(scope, receive, send)


# A repeat's answer at hand: (scope, the token in the path) -> its body, or None.
Quick = Callable[[Scope, str | None], bytes | None]


class ExosmsApp(Starlette):
    """Starlette, with Exotel's calls answered before the middleware stack and router: the
    applet path, the webhook and the status callbacks skip them (each endpoint turns every
    fault into its own answer), so middleware added to the app does not see Exotel's calls
    (docs/architecture.md). ``<applet_path>/`` (a URL pasted with a trailing slash) is the
    applet too."""

    def __init__(
        self,
        applet: ASGIApp,
        applet_path: str,
        metrics: Metrics | None = None,
        direct: Mapping[str, Direct] | None = None,
        quick: Quick | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._applet = applet
        self._quick = quick
        self._applet_path = applet_path
        self._token_prefix = applet_path + "/"
        self._metrics = metrics
        self._direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._metrics is not None and scope["type"] == "http":
            await self._metered(self._metrics, scope, receive, send)
        else:
            await self._route(scope, receive, send)

    def quick_answer(self, scope: Scope) -> bytes | None:
        """The body of an applet answer that needs no ASGI round (a repeat answered from
        memory), or ``None``. Called by our HTTP protocol before it starts the app
        (``web.protocol``); the answer goes out with ``answer_headers`` and status 200."""
        quick = self._quick
        if quick is None:
            return None
        path: str = scope["path"]
        token = None
        if path != self._applet_path:
            if not path.startswith(self._token_prefix):
                return None
            token = path[len(self._token_prefix) :]
            if "/" in token:
                return None
            token = token or None
        started = time.perf_counter()
        body = quick(scope, token)
        if body is not None and self._metrics is not None:
            self._metrics.request("applet", 200, time.perf_counter() - started)
        return body

    async def _metered(self, metrics: Metrics, scope: Scope, receive: Receive, send: Send) -> None:
        """Route, counting the request by endpoint and status, and timing its answer."""
        started = time.perf_counter()
        status = 500  # what the server sends when the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._route(scope, receive, sending)
        finally:
            metrics.request(
                endpoint_of(scope["path"], self._applet_path),
                status,
                time.perf_counter() - started,
            )

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == self._applet_path:
                await self._applet(scope, receive, send)
                return
            if path.startswith(self._token_prefix):
                token = path[len(self._token_prefix) :]
                if "/" not in token:
                    if token:
                        scope["path_params"] = {"token": token}
                    await self._applet(scope, receive, send)
                    return
            direct = self._direct.get(path)
            if direct is None:
                head, _, token = path.rpartition("/")
                direct = self._direct.get(head) if token else None
                if direct is not None:
                    scope["path_params"] = {"token": token}
            if direct is not None and scope["method"] in direct.methods:
                await direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    router: Router,
    database: Database,
    *,
    rebuild_router: Callable[[], Router] | None = None,
    watch: Path | None = None,
    settings_file: Path | None = None,
) -> Starlette:
    """Build the exosms ASGI app from its parts.

    With ``rebuild_router`` and ``watch``, the router is rebuilt when ``watch`` changes on
    disk or the process gets SIGHUP; a rebuild that fails leaves the running router in place.
    With ``settings_file``, a new ``[inbox] password_hash`` written there applies at once.
    """
    late = settings.late_replies
    sends_late = late == "api" or (late == "auto" and settings.exotel.is_configured)
    metrics = running_metrics(settings)
    running = Running(settings, database, rebuild_router, watch)
    running.settings_file = settings_file
    running.metrics = metrics
    engine = running.engine = engine_from_settings(
        settings,
        database.store,
        router,
        running.gate,
        running.wake_outbox if sends_late else None,
        metrics,
    )
    gatekeeper = Gatekeeper(settings.auth)
    composer = Composer(
        running.gate,
        database.outbox,
        database.inbox,
        settings.exotel,
        running.wake_outbox,
        max_body_chars=settings.max_body_chars,
    )
    inbox = running.inbox = Inbox(
        settings.inbox,
        engine,
        gatekeeper,
        database.inbox,
        database.logins,
        composer=composer,
        timezone=settings.timezone,
        max_body_chars=settings.max_body_chars,
    )
    webhook = webhook_endpoint(
        engine, gatekeeper, settings.max_body_chars, running.wake_outbox, metrics
    )
    status = status_endpoint(database.outbox, gatekeeper, settings.exotel.signing_key(), metrics)
    applet = AppletEndpoint(
        engine,
        gatekeeper,
        max_body_chars=settings.max_body_chars,
        max_query_bytes=settings.max_query_bytes,
        metrics=metrics,
    )
    pages = Pages(settings, database.store, gatekeeper, metrics)
    scraped = []
    if metrics is not None and settings.metrics.token is not None:
        from exosms.store.outbox_view import OutboxView
        from exosms.web.metrics_page import MetricsPage  # imports prometheus_client

        scraped = MetricsPage(
            metrics,
            settings.metrics.token,
            OutboxView(database.outbox.engine),
            database.events.reports,
            tuple(d.name for d in settings.forwarding.destinations),
        ).routes()
    api = Api(inbox, tuple(d.name for d in settings.forwarding.destinations))
    app = ExosmsApp(
        applet,
        settings.applet_path,
        metrics,
        quick=applet.quick,
        direct={
            "/exotel/webhook": Direct(webhook, frozenset({"POST"})),
            "/exotel/status": Direct(status, frozenset({"GET", "POST"})),
        },
        routes=[
            *scraped,
            *inbox.routes(),
            *Replying(inbox, composer).routes(),
            *OptOutsPage(inbox, database.store).routes(),
            *UsersPage(inbox, inbox.gate.users).routes(),
            *Assigning(inbox, inbox.gate.users).routes(),
            *OutboxPage(inbox, database.outbox, running.wake_outbox).routes(),
            *DltPage(
                inbox,
                database.store,
                running.gate,
                running.load_templates,
                settings.max_upload_bytes,
            ).routes(),
            *api.routes(),
            *Forwarding(inbox, api, database.events, settings.forwarding.destinations).routes(),
            Route("/exotel/webhook", webhook, methods=["POST"]),
            Route("/exotel/webhook/{token}", webhook, methods=["POST"]),
            Route("/exotel/status", status, methods=["GET", "POST"]),
            Route("/exotel/status/{token}", status, methods=["GET", "POST"]),
            Route("/healthz", pages.healthz, methods=["GET"]),
            Route("/", pages.index, methods=["GET"]),
        ],
        lifespan=running.lifespan,
    )
    # Starlette's own trailing-slash redirect builds its Location from the Host header.
    app.router.redirect_slashes = False
    app.router.default = _NotFound(app.router)
    app.state.engine = engine
    app.state.gatekeeper = gatekeeper
    app.state.settings = settings
    return app


def engine_from_settings(
    settings: Settings,
    store: Store,
    router: Router,
    gate: DltGate,
    late_replies: Callable[[], None] | None = None,
    metrics: Metrics | None = None,
) -> ReplyEngine:
    """The reply engine the settings describe, answering with ``router`` from ``store``."""
    return ReplyEngine(
        store,
        router,
        deadline=settings.reply_deadline,
        fallback=settings.fallback_reply,
        cache_size=settings.replay_cache_size,
        gate=gate,
        session_ttl=settings.session_ttl,
        guards=Guards(settings.guards),
        max_concurrent_handlers=settings.max_concurrent_handlers,
        handler_threads=settings.handler_threads,
        late_replies=late_replies,
        metrics=metrics,
    )


def running_metrics(settings: Settings) -> Metrics | None:
    """The app's metrics: made only when a scraper can read them (a ``[metrics] token``)."""
    return Metrics() if settings.metrics.token is not None else None


class _NotFound:
    """No route matched: redirect (307) to the same path with or without its trailing slash
    when that one exists, with a Location of the path alone (never a host from the
    request), else 404."""

    def __init__(self, router: StarletteRouter) -> None:
        self._router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "/")
        response: Response = text_response(404, "not found\n")
        if scope["type"] == "http" and path.strip("/"):
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            probe = {**scope, "path": other}
            if any(route.matches(probe)[0] != Match.NONE for route in self._router.routes):
                raw = bytes(scope.get("raw_path") or path.encode()).decode("latin-1")
                raw = raw.rstrip("/") if path.endswith("/") else raw + "/"
                location = "/" + raw.lstrip("/")  # never `//host`
                query = bytes(scope.get("query_string", b"")).decode("latin-1")
                response = Response(
                    status_code=307,
                    headers={"location": location + ("?" + query if query else "")},
                )
        if scope["type"] == "http":
            await response(scope, receive, send)


def app_from_environment() -> Starlette:
    """The app as ``exosms serve`` runs it in each worker: settings from ``EXOSMS_*``."""
    config_file = resolve_config_file(None)
    settings = load_settings(config_file)
    quieten_logging_overhead()  # this worker's own logging module, as serve set up its parent

    def rebuild() -> Router:
        return router_from_settings(settings, config_file)

    return create_app(
        settings,
        rebuild(),
        open_database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            timeout=settings.reply_deadline,
        ),
        rebuild_router=rebuild,
        watch=rules_source(settings, config_file),
        settings_file=config_file,
    )
