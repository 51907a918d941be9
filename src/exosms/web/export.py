"""The inbox's messages as a download: CSV for spreadsheets (Excel reads its UTF-8), JSONL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

from starlette.responses import Response, StreamingResponse

from exosms.store.inbox import Filters, InboxQueries
from exosms.web import present
from exosms.web.filters import BadFilter


def export_response(queries: InboxQueries, filters: Filters, kind: str, zone: ZoneInfo) -> Response:
    """The filtered messages as CSV or JSONL, streamed (a thousand rows per query)."""
    stamp = datetime.now(zone).strftime("%Y%m%d-%H%M")

    async def csv_rows() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(present.EXPORT_FIELDS)
        yield "\ufeff".encode() + _drain(out)  # the BOM: Excel then reads UTF-8 (Hindi)
        count = 0
        async for message in queries.stream(filters):
            data = present.message_json(message, zone=zone)
            writer.writerow(
                [present.spreadsheet_safe(data.get(name)) for name in present.EXPORT_FIELDS]
            )
            count += 1
            if count % 500 == 0:
                yield _drain(out)
        yield _drain(out)

    async def jsonl_rows() -> AsyncIterator[bytes]:
        lines: list[str] = []
        async for message in queries.stream(filters):
            lines.append(json.dumps(present.message_json(message, zone=zone), ensure_ascii=False))
            if len(lines) == 500:
                yield ("\n".join(lines) + "\n").encode()
                lines = []
        if lines:
            yield ("\n".join(lines) + "\n").encode()

    if kind == "csv":
        media, body, suffix = "text/csv; charset=utf-8", csv_rows(), "csv"
    elif kind == "jsonl":
        media, body, suffix = "application/x-ndjson; charset=utf-8", jsonl_rows(), "jsonl"
    else:
        raise BadFilter(f"format: {kind!r} is not csv or jsonl")
    return StreamingResponse(
        body,
        media_type=media,
        headers={
            "content-disposition": f'attachment; filename="exosms-messages-{stamp}.{suffix}"',
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        },
    )


def _drain(out: io.StringIO) -> bytes:
    data = out.getvalue().encode()
    out.seek(0)
    out.truncate()
    return data
