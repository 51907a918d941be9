"""A fake Exotel, for tests and for local development.

It serves ``Sms/send.json`` and ``Sms/bulksend.json`` with Exotel's response shapes, checks
Basic auth and the required fields, applies the DLT rule to ``DltTemplateId`` and ``Body``
with a template registry, can be told to answer 429 or 503 or to hang, and posts status
callbacks to each message's ``StatusCallback``. It also plays Exotel's inbound side: an
applet HEAD + GET, or a webhook POST, to any URL.

Control endpoints (JSON): ``POST /_fake/fail`` ``{"status": 429, "times": 2,
"retry_after": 1}`` or ``{"hang": true, "times": 1}``; ``GET /_fake/messages``;
``POST /_fake/reset``; ``POST /_fake/applet`` ``{"url", "from", "to", "body"}``;
``POST /_fake/webhook`` ``{"url", "shape": "json"|"form", "from", "to", "body"}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exosms.dlt import TemplateRegistry
from exosms.exotel.applet import IST
from exosms.exotel.caller import AppletSms
from exosms.segments import segment

DELIVERED = "20005"  # DetailedStatusCode: delivered to handset
TEMPLATE_MISMATCH = "23185"  # DetailedStatusCode: DLT template does not match


def _exception(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"RestException": {"Status": status, "Message": message, "Code": status}}, status
    )


@dataclass
class FakeExotel:
    """The fake's state: credentials, sent messages, queued failures."""

    account_sid: str = "acme"
    api_key: str = "key"
    api_token: str = "token"  # noqa: S105 - the fake's documented default
    registry: TemplateRegistry | None = None
    callback_delay: float = 0.05
    messages: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.api_key) and hmac.compare_digest(
            password, self.api_token
        )

    async def _failure(self) -> Response | None:
        if not self.failures:
            return None
        failure = self.failures[0]
        failure["times"] = int(failure.get("times", 1)) - 1
        if failure["times"] <= 0:
            self.failures.pop(0)
        if failure.get("hang"):
            await asyncio.sleep(3600)
        status = int(failure.get("status", 503))
        response = _exception(status, "Too many requests" if status == 429 else "Try later")
        if "retry_after" in failure:
            response.headers["Retry-After"] = str(failure["retry_after"])
        return response

    def _accept(self, form: dict[str, str]) -> dict[str, Any] | JSONResponse:
        for name in ("From", "To", "Body"):
            if not form.get(name):
                return _exception(400, f"Missing parameter {name}")
        registry = self.registry
        if registry is not None and len(registry):
            template_id = form.get("DltTemplateId", "")
            compiled = registry.get(template_id) if template_id else None
            if compiled is None:
                return _exception(400, f"DltTemplateId {template_id!r} is not registered")
            if registry.match(form["Body"]).template_id != template_id:
                return _exception(400, f"Body does not match template ({TEMPLATE_MISMATCH})")
        sid = uuid.uuid4().hex
        record = {**form, "Sid": sid}
        self.messages.append(record)
        if form.get("StatusCallback"):
            task = asyncio.get_running_loop().create_task(self._callback(record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return {
            "Sid": sid,
            "AccountSid": self.account_sid,
            "From": form["From"],
            "To": form["To"],
            "Body": form["Body"],
            "Status": "queued",
            "DetailedStatus": "PENDING_TO_OPERATOR",
            "DetailedStatusCode": 21010,
            "DateCreated": datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S"),
            "SmsUnits": None,
            "Priority": form.get("Priority", "normal"),
            "Uri": f"/v1/Accounts/{self.account_sid}/SMS/Messages/{sid}.json",
        }

    async def _callback(self, record: dict[str, str]) -> None:
        await asyncio.sleep(self.callback_delay)
        fields = {
            "SmsSid": record["Sid"],
            "To": record["To"],
            "Status": "sent",
            "SmsUnits": str(segment(record["Body"]).count),
            "DetailedStatus": "DELIVERED_TO_HANDSET",
            "DetailedStatusCode": DELIVERED,
            "DateSent": datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S"),
            "CustomField": record.get("CustomField", ""),
        }
        # As Exotel does: a callback that fails is not retried.
        async with httpx.AsyncClient(timeout=10) as client:
            with contextlib.suppress(httpx.HTTPError):
                await client.post(record["StatusCallback"], data=fields)

    async def _refusal(self, request: Request) -> Response | None:
        if request.path_params["sid"] != self.account_sid:
            return _exception(404, "Account not found")
        if not self._authorised(request):
            return _exception(401, "Authentication failed")
        return await self._failure()

    async def send(self, request: Request) -> Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        form = {k: str(v) for k, v in (await request.form()).items()}
        accepted = self._accept(form)
        if isinstance(accepted, JSONResponse):
            return accepted
        return JSONResponse({"SMSMessage": accepted})

    async def bulk(self, request: Request) -> Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        form = {k: str(v) for k, v in (await request.form()).items()}
        grouped: dict[int, dict[str, str]] = {}
        for key, value in form.items():
            if key.startswith("Messages[") and "][" in key:
                position, _, name = key[9:-1].partition("][")
                if position.isdigit():
                    grouped.setdefault(int(position), {})[name] = value
        if not grouped or len(grouped) > 100:
            return _exception(400, "Send 1 to 100 Messages[i][...] entries")
        entries = []
        for index in sorted(grouped):
            accepted = self._accept(grouped[index])
            if isinstance(accepted, JSONResponse):
                return accepted
            entries.append({"SMSMessage": accepted})
        return JSONResponse({"SMSMessages": entries})

    async def control_fail(self, request: Request) -> Response:
        self.failures.append(await request.json())
        return JSONResponse({"queued_failures": len(self.failures)})

    async def control_messages(self, request: Request) -> Response:
        return JSONResponse(self.messages)

    async def control_reset(self, request: Request) -> Response:
        self.messages.clear()
        self.failures.clear()
        return JSONResponse({"ok": True})

    async def control_applet(self, request: Request) -> Response:
        data = await request.json()
        sms = AppletSms(
            sender=data.get("from", "9052161119"),
            recipient=data.get("to", "56070"),
            body=data.get("body", ""),
        )
        async with httpx.AsyncClient(timeout=15) as client:
            await client.head(data["url"], params=sms.as_dict())
            answer = await client.get(data["url"], params=sms.as_dict())
        return JSONResponse(
            {"SmsSid": sms.sms_sid, "status": answer.status_code, "reply": answer.text}
        )

    async def control_webhook(self, request: Request) -> Response:
        data = await request.json()
        sid = uuid.uuid4().hex
        async with httpx.AsyncClient(timeout=15) as client:
            if data.get("shape", "json") == "json":
                answer = await client.post(
                    data["url"],
                    json={
                        "SmsSid": sid,
                        "Direction": "incoming",
                        "Sender": data.get("from", "+919052161119"),
                        "ReceivedOn": data.get("to", "56070"),
                        "MessageBody": data.get("body", ""),
                        "ReceivedTime": datetime.now(IST).isoformat(timespec="seconds"),
                    },
                )
            else:
                answer = await client.post(
                    data["url"],
                    data={
                        "SmsSid": sid,
                        "From": data.get("from", "09052161119"),
                        "To": data.get("to", "56070"),
                        "Body": data.get("body", ""),
                        "DateCreated": datetime.now(IST).isoformat(timespec="seconds"),
                        "AccountSid": self.account_sid,
                    },
                )
        return JSONResponse({"SmsSid": sid, "status": answer.status_code})

    def app(self) -> Starlette:
        base = "/v1/Accounts/{sid}/Sms"
        return Starlette(
            routes=[
                Route(f"{base}/send.json", self.send, methods=["POST"]),
                Route(f"{base}/bulksend.json", self.bulk, methods=["POST"]),
                Route("/_fake/fail", self.control_fail, methods=["POST"]),
                Route("/_fake/messages", self.control_messages, methods=["GET"]),
                Route("/_fake/reset", self.control_reset, methods=["POST"]),
                Route("/_fake/applet", self.control_applet, methods=["POST"]),
                Route("/_fake/webhook", self.control_webhook, methods=["POST"]),
            ]
        )
