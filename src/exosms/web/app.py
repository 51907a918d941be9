"""The ASGI application factory. Nothing connects at import time: the store opens in the
app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.routing import Router as StarletteRouter
from starlette.types import ASGIApp, Receive, Scope, Send

from exosms.config import Settings, load_settings, resolve_config_file
from exosms.dlt import TemplateRegistry
from exosms.engine import ReplyEngine
from exosms.forwarding.forwarder import Forwarder
from exosms.forwarding.setup import forwarder_of
from exosms.gate import DltGate
from exosms.guards import Guards
from exosms.logs import quieten_logging_overhead
from exosms.notifications import Notifier, apprise_sender
from exosms.routing import Router
from exosms.rule_table import notify_names
from exosms.rules import RulesFile, router_from_settings, rules_source
from exosms.sending import OutboxWorker, worker_from_settings
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
from exosms.web.reloading import watch_password, watch_rules, watch_templates
from exosms.web.replying import Replying
from exosms.web.users_page import UsersPage
from exosms.web.webhooks import status_endpoint, webhook_endpoint

log = logging.getLogger("exosms")
PASSWORD_LOOK_SECONDS = 1.0  # how often the settings file is looked at for a new password


class ExosmsApp(Starlette):
    """Starlette, with the applet path answered before the middleware stack and router:
    the hot path skips them (the endpoint turns every fault into its own answer), so
    middleware added to the app does not see Exotel's applet calls (docs/architecture.md).
    ``<applet_path>/`` (a URL pasted with a trailing slash) is the applet too."""

    def __init__(self, applet: ASGIApp, applet_path: str, **options: Any) -> None:
        super().__init__(**options)
        self._applet = applet
        self._applet_path = applet_path
        self._token_prefix = applet_path + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
    running = _Running(settings, database, rebuild_router, watch)
    running.settings_file = settings_file
    engine = running.engine = engine_from_settings(
        settings, database.store, router, running.gate, running.wake_outbox if sends_late else None
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
    webhook = webhook_endpoint(engine, gatekeeper, settings.max_body_chars, running.wake_outbox)
    status = status_endpoint(database.outbox, gatekeeper, settings.exotel.signing_key())
    applet = AppletEndpoint(
        engine,
        gatekeeper,
        max_body_chars=settings.max_body_chars,
        max_query_bytes=settings.max_query_bytes,
    )
    pages = Pages(settings, database.store, gatekeeper)
    api = Api(inbox, tuple(d.name for d in settings.forwarding.destinations))
    app = ExosmsApp(
        applet,
        settings.applet_path,
        routes=[
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
    )


class _Running:
    """What runs beside the endpoints, from the app's start to its end: the store, the
    engine's lease, the DLT templates and their reloads, the rules' reloads, the outbox
    worker (when ``[exotel]`` is configured), the forwarder and the overview's first read."""

    engine: ReplyEngine
    inbox: Inbox

    def __init__(
        self,
        settings: Settings,
        database: Database,
        rebuild_router: Callable[[], Router] | None,
        watch: Path | None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.rebuild_router = rebuild_router
        self.watch = watch
        self.gate = DltGate(mode=settings.dlt.mode, max_parts=settings.max_reply_parts)
        self.worker: OutboxWorker | None = None  # set at start when [exotel] is configured
        self.forwarder: Forwarder | None = None  # set at start
        self.notifier: Notifier | None = None  # set at start when [notify] names anyone
        self.settings_file: Path | None = None  # watched for a new inbox password

    def wake_outbox(self) -> None:
        """A reply was queued: the worker sends it now rather than at its next look."""
        if self.worker is not None:
            self.worker.wake()

    async def load_templates(self) -> None:
        """The DLT templates from the store, into the gate (and the worker's client)."""
        dlt = self.settings.dlt
        templates = await self.database.store.load_templates()
        self.gate.registry = await asyncio.to_thread(
            TemplateRegistry,
            templates,
            var_max_len=dlt.var_max_len,
            typed_max_len=dlt.typed_var_max_len,
        )
        if self.worker is not None:
            self.worker.client.registry = self.gate.registry

    def _tasks(self) -> list[asyncio.Task[None]]:
        settings = self.settings
        store = self.database.store
        tasks = [
            asyncio.create_task(
                watch_templates(store, settings.dlt.reload_seconds, self.load_templates, self.gate)
            )
        ]
        if settings.inbox.enabled:  # the overview's first read of a week is the slow one
            tasks.append(asyncio.create_task(self.inbox.warm_up()))
        if self.settings_file is not None:
            tasks.append(
                asyncio.create_task(
                    watch_password(
                        self.settings_file,
                        PASSWORD_LOOK_SECONDS,
                        settings.inbox.password_hash,
                        self.inbox.gate.set_password_hash,
                    )
                )
            )
        if self.watch is not None and self.rebuild_router is not None:
            every = settings.rules_reload_seconds
            tasks.append(
                asyncio.create_task(
                    watch_rules(self.engine, self.watch, self.rebuild_router, every)
                )
            )
        return tasks

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        await self.database.open()
        await self.engine.start()
        await self.load_templates()
        tasks = self._tasks()
        if settings.notify.urls or settings.notify.people:
            self.notifier = Notifier(
                self.database.inbox.engine,
                settings.notify,
                public_url=settings.exotel.public_url,
                notify_rules=lambda: notify_names(_rule_entries(settings, self.watch)),
                send=apprise_sender(),
            )
            self.notifier.start()
        if settings.forwarding.run == "server":
            self.forwarder = forwarder_of(settings.forwarding, self.database.events)
            self.forwarder.start()
        if settings.exotel.is_configured:
            self.worker = worker_from_settings(
                settings.exotel,
                self.database.outbox,
                webhook_token=settings.auth.token,
                dlt_mode=settings.dlt.mode,
                registry=self.gate.registry,
            )
            self.worker.start()
        log.info(
            "exosms answering on %s (DLT %s, %d templates)",
            settings.applet_path,
            self.gate.effective_mode,
            len(self.gate.registry),
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.notifier is not None:
                await self.notifier.stop()
            if self.forwarder is not None:
                await self.forwarder.stop()
            if self.worker is not None:
                await self.worker.stop()
            await self.engine.router.aclose()  # the upstream rules' connections
            await self.engine.stop()
            await self.database.close()


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


def _rule_entries(settings: Settings, source: Path | None) -> list[Any]:
    """The ``[[rules]]`` tables as written now (the file is re-read: rules reload)."""
    if source is not None and source.is_file():
        try:
            return [spec.data for spec in RulesFile.from_path(source).specs]
        except (OSError, ValueError):
            return []
    return list(settings.rules)


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
