"""The ASGI application factory. Nothing connects at import time: the store opens in the
app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.routing import Router as StarletteRouter
from starlette.types import ASGIApp, Receive, Scope, Send

from exosms.config import Settings, load_settings, resolve_config_file
from exosms.dlt import TemplateRegistry
from exosms.engine import ReplyEngine
from exosms.gate import DltGate
from exosms.guards import Guards
from exosms.loading import AppLoadError
from exosms.logs import quieten_logging_overhead
from exosms.routing import Router
from exosms.rules import RulesError, router_from_settings, rules_source
from exosms.sending import OutboxWorker, worker_from_settings
from exosms.store import Database, Store, StoreUnavailable, open_database
from exosms.upstream import close_clients
from exosms.web.api import Api
from exosms.web.applet import AppletEndpoint
from exosms.web.auth import Gatekeeper
from exosms.web.inbox import Inbox
from exosms.web.webhooks import status_endpoint, webhook_endpoint

log = logging.getLogger("exosms")


def _text(status: int, text: str) -> Response:
    return Response(text, status_code=status, headers={"content-type": "text/plain"})


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
) -> Starlette:
    """Build the exosms ASGI app from its parts.

    With ``rebuild_router`` and ``watch``, the router is rebuilt when ``watch`` changes on
    disk or the process gets SIGHUP; a rebuild that fails leaves the running router in place.
    """
    store = database.store
    gate = DltGate(mode=settings.dlt.mode, max_parts=settings.max_reply_parts)
    late = settings.late_replies
    sends_late = late == "api" or (late == "auto" and settings.exotel.is_configured)
    engine = ReplyEngine(
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
        late_replies=(lambda: wake_outbox()) if sends_late else None,
    )

    async def load_templates() -> None:
        templates = await store.load_templates()
        gate.registry = await asyncio.to_thread(
            TemplateRegistry,
            templates,
            var_max_len=settings.dlt.var_max_len,
            typed_max_len=settings.dlt.typed_var_max_len,
        )
        for running in worker:
            running.client.registry = gate.registry

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await database.open()
        await engine.start()
        await load_templates()
        watcher = asyncio.create_task(
            _watch_templates(store, settings.dlt.reload_seconds, load_templates, gate)
        )
        # The overview's first read of a week of messages is the slow one: do it now.
        warm = asyncio.create_task(inbox.warm_up()) if settings.inbox.enabled else None
        rules_watcher = (
            asyncio.create_task(
                _watch_rules(engine, watch, rebuild_router, settings.rules_reload_seconds)
            )
            if watch is not None and rebuild_router is not None
            else None
        )
        if settings.exotel.is_configured:
            worker.append(worker_from_settings(settings, database.outbox, gate.registry))
            worker[0].start()
        log.info(
            "exosms answering on %s (DLT %s, %d templates)",
            settings.applet_path,
            gate.effective_mode,
            len(gate.registry),
        )
        try:
            yield
        finally:
            for task in (watcher, rules_watcher, warm):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            for running in worker:
                await running.stop()
            await close_clients()
            await engine.stop()
            await database.close()

    async def healthz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreUnavailable as error:
            log.error("health check: database unavailable: %s", error)
            return _text(503, "database unavailable\n")
        return _text(200, f"ok\nrefused requests: {gatekeeper.refused}\n")

    async def index(request: Request) -> Response:
        applet_url = f"{request.base_url}{settings.applet_path.lstrip('/')}"
        inbox_line = (
            f"The inbox: {request.base_url}inbox\n"
            if settings.inbox.enabled
            else "The inbox is off: set an admin password with `exosms password`.\n"
        )
        return _text(
            200,
            f"exosms is running.\nPoint Exotel's Send a Reply applet at {applet_url}\n"
            + inbox_line,
        )

    gatekeeper = Gatekeeper(settings.auth)
    worker: list[OutboxWorker] = []  # set in the lifespan when [exotel] is configured

    def wake_outbox() -> None:
        if worker:
            worker[0].wake()

    webhook = webhook_endpoint(engine, gatekeeper, settings.max_body_chars, wake_outbox)
    status = status_endpoint(database.outbox, gatekeeper, settings.exotel.signing_key())
    applet = AppletEndpoint(
        engine,
        gatekeeper,
        max_body_chars=settings.max_body_chars,
        max_query_bytes=settings.max_query_bytes,
    )
    inbox = Inbox(settings, engine, gatekeeper, database.inbox, database.logins)
    app = ExosmsApp(
        applet,
        settings.applet_path,
        routes=[
            *inbox.routes(),
            *Api(inbox).routes(),
            Route("/exotel/webhook", webhook, methods=["POST"]),
            Route("/exotel/webhook/{token}", webhook, methods=["POST"]),
            Route("/exotel/status", status, methods=["GET", "POST"]),
            Route("/exotel/status/{token}", status, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/", index, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    # Starlette's own trailing-slash redirect builds its Location from the Host header.
    app.router.redirect_slashes = False
    app.router.default = _NotFound(app.router)
    app.state.engine = engine
    app.state.gatekeeper = gatekeeper
    app.state.settings = settings
    return app


class _NotFound:
    """No route matched: redirect (307) to the same path with or without its trailing slash
    when that one exists, with a Location of the path alone (never a host from the
    request), else 404."""

    def __init__(self, router: StarletteRouter) -> None:
        self._router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "/")
        response: Response = _text(404, "not found\n")
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


async def _watch_templates(
    store: Store, every: float, load: Callable[[], Awaitable[None]], gate: DltGate
) -> None:
    """`exosms dlt import` writes to the database; every process picks the change up."""
    version = await store.templates_version()
    while True:
        await asyncio.sleep(every)
        try:
            latest = await store.templates_version()
            if latest != version:
                await load()
                version = latest
                log.info("DLT templates reloaded: %d approved", len(gate.registry))
        except StoreUnavailable as error:
            log.warning("could not check for new DLT templates: %s", error)


async def _watch_rules(
    engine: ReplyEngine, path: Path, rebuild: Callable[[], Router], every: float
) -> None:
    """Rebuild the router when ``path`` changes or the process gets SIGHUP; a rebuild that
    fails leaves the running router in place."""
    changed = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, changed.set)
    seen = _mtime(path)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), every)
        now = _mtime(path)
        if not changed.is_set() and now == seen:
            continue
        changed.clear()
        seen = now
        try:
            engine.router = await asyncio.to_thread(rebuild)
        except RulesError as error:
            for problem in error.problems:
                log.error("rules not reloaded: %s", problem)
            log.error("rules not reloaded: the previous rules stay in force")
        except AppLoadError as error:
            log.error("rules not reloaded: %s; the previous rules stay in force", error)
        else:
            log.info("rules reloaded from %s: %d rules", path, len(engine.router.rules))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


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
    )
