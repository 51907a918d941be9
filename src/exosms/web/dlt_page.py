"""The DLT page, /inbox/dlt: the templates in force, a portal export uploaded with its import
report, and every reply the DLT check refused, grouped by the template it came closest to,
each with the text to register ready to copy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exosms.dlt_import import ImportFileError, ImportResult, read_upload
from exosms.gate import DltGate
from exosms.store.base import Store
from exosms.store.textsql import fetch_all
from exosms.web.compose import what_to_register
from exosms.web.inbox import Inbox
from exosms.web.login import Login

UPLOAD_PATH = "/inbox/dlt/upload"  # the one inbox path that takes a large body
REFUSED_READ = 300  # the newest refused replies grouped on the page


@dataclass(slots=True)
class RefusedGroup:
    """Refused replies that came closest to one template (or to none)."""

    closest_id: str | None
    closest_content: str | None
    count: int = 0
    texts: list[tuple[int, str, str]] = field(default_factory=list)  # (id, text, register)


class DltPage:
    """The registry, the upload, the refused replies."""

    def __init__(
        self,
        inbox: Inbox,
        store: Store,
        gate: DltGate,
        reload: Callable[[], Awaitable[None]],
        max_upload_bytes: int,
    ) -> None:
        """``gate``: the server's (its registry is the one in force); ``reload``: reads the
        templates from the store into it, at once after an upload."""
        self.inbox = inbox
        self.store = store
        self.gate = gate
        self.reload = reload
        self.max_upload_bytes = max_upload_bytes

    async def refused(self) -> list[RefusedGroup]:
        """The newest replies the DLT check refused, grouped by closest template (the
        groups with the most first)."""
        rows = await fetch_all(
            self.inbox.queries.engine,
            "SELECT id, refused_reply FROM messages WHERE refused_reply IS NOT NULL"
            " AND outcome = 'dlt_refused' ORDER BY received_at DESC LIMIT :limit",
            limit=REFUSED_READ,
        )
        registry = self.gate.registry
        groups: dict[str | None, RefusedGroup] = {}
        for message_id, text in rows:
            verdict = registry.match(text)
            if verdict.matched:  # a template imported since: it would go now
                continue
            closest = registry.get(verdict.closest_id) if verdict.closest_id else None
            group = groups.get(verdict.closest_id)
            if group is None:
                content = closest.template.content if closest else None
                group = groups[verdict.closest_id] = RefusedGroup(verdict.closest_id, content)
            group.count += 1
            if len(group.texts) < 5:
                group.texts.append((message_id, text, what_to_register(text)))
        return sorted(groups.values(), key=lambda g: -g.count)

    async def show(
        self,
        request: Request,
        login: Login,
        *,
        status: int = 200,
        report: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Response:
        """GET: the templates in force and the refused replies."""
        templates = sorted(self.gate.registry, key=lambda t: (t.name.casefold(), t.template_id))
        return self.inbox.page(
            "dlt.html",
            status,
            login=login,
            mode=self.gate.effective_mode,
            templates=templates,
            groups=await self.refused(),
            upload_path=UPLOAD_PATH,
            max_upload_mb=self.max_upload_bytes / 1_000_000,
            report=report,
            error=error,
        )

    async def upload(self, request: Request, login: Login) -> Response:
        """POST (multipart): a portal export (CSV, XLSX or TOML) imported, with its report."""
        form: FormData = request.state.form
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await self.show(request, login, status=400, error="Choose a file to import.")
        data = await upload.read()
        try:
            result: ImportResult = await asyncio.to_thread(read_upload, upload.filename, data)
        except ImportFileError as error:
            message = f"{upload.filename}: {error}"
            return await self.show(request, login, status=400, error=message)
        inserted, updated = await self.store.save_templates(result.templates)
        await self.reload()
        report = {
            "file": upload.filename,
            "rows": result.rows,
            "imported": inserted,
            "updated": updated,
            "unchanged": len(result.templates) - inserted - updated,
            "skipped": result.skipped[:50],
            "skipped_count": len(result.skipped),
        }
        return await self.show(request, login, report=report)

    def routes(self) -> list[BaseRoute]:
        """The page and its upload, behind the inbox's login (and CSRF)."""
        g = self.inbox.guarded
        upload = g(
            self.upload, post=True, admin=True, max_files=1, max_part_size=self.max_upload_bytes
        )
        return [  # an admin's pages
            Route("/inbox/dlt", g(self.show, admin=True), methods=["GET"]),
            Route(UPLOAD_PATH, upload, methods=["POST"]),
        ]
