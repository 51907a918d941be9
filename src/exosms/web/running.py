"""What runs beside the endpoints from the app's start to its end (its lifespan): the store,
the engine's lease, the DLT templates and their reloads, the rules' reloads, the password's,
the outbox worker, the forwarder, the notifier and the overview's first read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from exosms.config import Settings
from exosms.dlt import TemplateRegistry
from exosms.engine import ReplyEngine
from exosms.forwarding.forwarder import Forwarder
from exosms.forwarding.setup import forwarder_of
from exosms.gate import DltGate
from exosms.metrics import Metrics
from exosms.notifications import Notifier, apprise_sender
from exosms.routing import Router
from exosms.rule_table import notify_names
from exosms.rules import RulesFile
from exosms.sending import OutboxWorker, worker_from_settings
from exosms.store import Database
from exosms.web.inbox import Inbox
from exosms.web.reloading import watch_password, watch_rules, watch_templates

log = logging.getLogger("exosms")
PASSWORD_LOOK_SECONDS = 1.0  # how often the settings file is looked at for a new password


class Running:
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
        self.metrics: Metrics | None = None  # counted when [metrics] has a token

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
                metrics=self.metrics,
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


def _rule_entries(settings: Settings, source: Path | None) -> list[Any]:
    """The ``[[rules]]`` tables as written now (the file is re-read: rules reload)."""
    if source is not None and source.is_file():
        try:
            return [spec.data for spec in RulesFile.from_path(source).specs]
        except (OSError, ValueError):
            return []
    return list(settings.rules)
