"""The ASGI application factory. Nothing connects at import time: the store opens in the
app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exosms.config import Settings, load_settings
from exosms.demo import build_demo_router
from exosms.dlt import TemplateRegistry
from exosms.engine import DltGate, ReplyEngine
from exosms.loading import load_router
from exosms.routing import Router
from exosms.store import Store, StoreUnavailable, open_store
from exosms.web.applet import AppletEndpoint

log = logging.getLogger("exosms")


def _text(status: int, text: str) -> Response:
    return Response(text, status_code=status, headers={"content-type": "text/plain"})


def create_app(settings: Settings, router: Router, store: Store) -> Starlette:
    """Build the exosms ASGI app from its parts."""
    gate = DltGate(mode=settings.dlt.mode, max_parts=settings.max_reply_parts)
    engine = ReplyEngine(
        store,
        router,
        deadline=settings.reply_deadline,
        fallback=settings.fallback_reply,
        cache_size=settings.replay_cache_size,
        gate=gate,
    )

    async def load_templates() -> None:
        templates = await store.load_templates()
        gate.registry = await asyncio.to_thread(
            TemplateRegistry,
            templates,
            var_max_len=settings.dlt.var_max_len,
            typed_max_len=settings.dlt.typed_var_max_len,
        )

    async def watch_templates() -> None:
        # `exosms dlt import` writes to the database; every process picks the change up.
        version = await store.templates_version()
        while True:
            await asyncio.sleep(settings.dlt.reload_seconds)
            try:
                latest = await store.templates_version()
                if latest != version:
                    await load_templates()
                    version = latest
                    log.info("DLT templates reloaded: %d approved", len(gate.registry))
            except StoreUnavailable as error:
                log.warning("could not check for new DLT templates: %s", error)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await load_templates()
        watcher = asyncio.create_task(watch_templates())
        log.info(
            "exosms answering on %s (DLT %s, %d templates)",
            settings.applet_path,
            gate.effective_mode,
            len(gate.registry),
        )
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await store.close()

    async def healthz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreUnavailable as error:
            log.error("health check: database unavailable: %s", error)
            return _text(503, "database unavailable\n")
        return _text(200, "ok\n")

    async def index(request: Request) -> Response:
        applet_url = f"{request.base_url}{settings.applet_path.lstrip('/')}"
        return _text(
            200, f"exosms is running.\nPoint Exotel's Send a Reply applet at {applet_url}\n"
        )

    app = Starlette(
        routes=[
            Route(
                settings.applet_path,
                AppletEndpoint(
                    engine,
                    max_body_chars=settings.max_body_chars,
                    max_query_bytes=settings.max_query_bytes,
                ),
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/", index, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.settings = settings
    return app


def app_from_environment() -> Starlette:
    """The app as ``exosms serve`` runs it in each worker: settings from ``EXOSMS_*``."""
    settings = load_settings()
    router = load_router(settings.app) if settings.app else build_demo_router()
    return create_app(settings, router, open_store(settings.database_url))
