"""A fake Exotel, for tests and for local development.

It serves ``Sms/send`` (JSON with ``.json``, XML without, as Exotel does),
``Sms/bulksend.json`` and the SMS details endpoint (``SMS/Messages/<sid>.json``, either
casing) with Exotel's response shapes, checks Basic auth and the required fields, and posts
status callbacks to each message's ``StatusCallback``. As Exotel does, a body that matches
no registered DLT template is accepted and then reported ``failed`` with
``DetailedStatusCode`` 23185 in its callback; ``CustomField`` comes back only when it was
set. It also plays Exotel's inbound side: an applet HEAD + GET, or a webhook POST, to any URL.

Control endpoints (JSON): ``POST /_fake/fail`` with one fault, ``times`` (default 1):
``{"status": 429, "retry_after": 1}`` (answer that status), ``{"hang": true}`` (never
answer), ``{"drop_answer": true}`` (accept the SMS, then never answer),
``{"lose_callback": true}`` (accept, but never call back), ``{"repeat_callback": true}``
(call back twice); ``GET /_fake/messages``; ``POST /_fake/reset``; ``POST
/_fake/applet`` ``{"url", "from", "to", "body"}``; ``POST /_fake/webhook`` ``{"url",
"shape": "json"|"form", "from", "to", "body"}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

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


def _xml(entry: dict[str, Any]) -> str:
    fields = "".join(f"<{k}>{escape('' if v is None else str(v))}</{k}>" for k, v in entry.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<TwilioResponse><SMSMessage>{fields}</SMSMessage></TwilioResponse>\n"
    )


def _exception(status: int, message: str, *, xml: bool = False) -> Response:
    """Exotel's error answer: JSON for ``.json`` URLs, XML otherwise."""
    if xml:
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<TwilioResponse><RestException>'
            f"<Status>{status}</Status><Message>{escape(message)}</Message>"
            f"<Code>{status}</Code></RestException></TwilioResponse>\n"
        )
        return Response(text, status, media_type="application/xml")
    return JSONResponse(
        {"RestException": {"Status": status, "Message": message, "Code": status}}, status
    )


CALLBACKS_AT_ONCE = 16


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
    # One client for every status callback while the app runs (its lifespan): making one
    # per callback cost the fake more CPU than exosms spent sending.
    _callbacks: httpx.AsyncClient | None = None
    _posting: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(CALLBACKS_AT_ONCE)
    )

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Exotel's examples log in as key:token; older SDKs (PyPI exotel 0.1.5) as sid:token.
        known_user = hmac.compare_digest(user, self.api_key) or hmac.compare_digest(
            user, self.account_sid
        )
        return known_user and hmac.compare_digest(password, self.api_token)

    def _next_fault(self) -> dict[str, Any]:
        if not self.failures:
            return {}
        failure = self.failures[0]
        failure["times"] = int(failure.get("times", 1)) - 1
        if failure["times"] <= 0:
            self.failures.pop(0)
        return failure

    async def _failure(self, failure: dict[str, Any]) -> Response | None:
        if not failure or not ({"hang", "status"} & set(failure)):
            return None
        if failure.get("hang"):
            await asyncio.sleep(3600)
        status = int(failure.get("status", 503))
        response = _exception(status, "Too many requests" if status == 429 else "Try later")
        if "retry_after" in failure:
            response.headers["Retry-After"] = str(failure["retry_after"])
        return response

    def _accept(
        self, form: dict[str, str], fault: dict[str, Any] | None = None, *, xml: bool = False
    ) -> dict[str, Any] | Response:
        fault = fault or {}
        for name in ("From", "To", "Body"):
            if not form.get(name):
                return _exception(400, f"Missing parameter {name}", xml=xml)
        registry = self.registry
        template_id = form.get("DltTemplateId", "")
        if registry is not None and len(registry) and template_id and not registry.get(template_id):
            return _exception(400, f"DltTemplateId {template_id!r} is not registered", xml=xml)
        now = datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")
        sid = uuid.uuid4().hex
        record: dict[str, Any] = {**form, "Sid": sid, "Status": "queued", "DateCreated": now}
        # Exotel accepts a mismatch and the operator refuses it: reported in the callback.
        if (
            registry is not None
            and len(registry)
            and (not template_id or registry.match(form["Body"]).template_id != template_id)
        ):
            record.update(
                Status="failed",
                DetailedStatus="TEMPLATE_MISMATCH",
                DetailedStatusCode=TEMPLATE_MISMATCH,
            )
        if record["Status"] == "queued":
            record.update(
                Status="sent", DetailedStatus="DELIVERED_TO_HANDSET", DetailedStatusCode=DELIVERED
            )
        record["DateSent"] = now
        record["SmsUnits"] = str(segment(form["Body"]).count)
        self.messages.append(record)
        if form.get("StatusCallback") and not fault.get("lose_callback"):
            for _ in range(2 if fault.get("repeat_callback") else 1):
                task = asyncio.get_running_loop().create_task(self._callback(record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return self._entry(record, queued=True)

    def _entry(self, record: dict[str, Any], *, queued: bool) -> dict[str, Any]:
        """An SMSMessage as Exotel renders it: every field public clients read."""
        return {
            "Sid": record["Sid"],
            "AccountSid": self.account_sid,
            "From": f"{record['From']}",
            "To": record["To"],
            "DateCreated": record["DateCreated"],
            "DateUpdated": record["DateSent"],
            "DateSent": None if queued else record["DateSent"],
            "Body": record["Body"],
            "Direction": "outbound-api",
            "Uri": f"/v1/Accounts/{self.account_sid}/SMS/Messages/{record['Sid']}.json",
            "ApiVersion": None,
            "Price": None if queued else "0.200000",
            "Status": "queued" if queued else record["Status"],
            "DetailedStatus": "PENDING_TO_OPERATOR" if queued else record["DetailedStatus"],
            "DetailedStatusCode": 21010 if queued else int(record["DetailedStatusCode"]),
            "SmsUnits": None if queued else int(record["SmsUnits"]),
            "Priority": record.get("Priority", "normal"),
        }

    async def _callback(self, record: dict[str, Any]) -> None:
        await asyncio.sleep(self.callback_delay)
        fields = {
            "SmsSid": record["Sid"],
            "To": record["To"],
            "Status": record["Status"],
            "SmsUnits": record["SmsUnits"],
            "DetailedStatus": record["DetailedStatus"],
            "DetailedStatusCode": record["DetailedStatusCode"],
            "DateSent": record["DateSent"],
        }
        if record.get("CustomField"):  # only when it was set, as Exotel does
            fields["CustomField"] = record["CustomField"]
        # As Exotel does: a callback that fails is not retried.
        if self._callbacks is not None:
            # A few callbacks in flight at once, the rest waiting their turn: under a burst of
            # sends, callbacks queued in httpx's pool timed out (lost) and cost the fake
            # several times exosms's CPU.
            async with self._posting:
                with contextlib.suppress(httpx.HTTPError):
                    await self._callbacks.post(record["StatusCallback"], data=fields)
            return
        async with httpx.AsyncClient(timeout=10) as client:  # run without its lifespan
            with contextlib.suppress(httpx.HTTPError):
                await client.post(record["StatusCallback"], data=fields)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._callbacks = httpx.AsyncClient(timeout=10)
        try:
            yield
        finally:
            client, self._callbacks = self._callbacks, None
            await client.aclose()

    async def _refusal(
        self, request: Request, fault: dict[str, Any], *, xml: bool = False
    ) -> Response | None:
        if request.path_params["sid"] != self.account_sid:
            return _exception(404, "Account not found", xml=xml)
        if not self._authorised(request):
            return _exception(401, "Authentication failed", xml=xml)
        return await self._failure(fault)

    async def send(self, request: Request) -> Response:
        fault = self._next_fault()
        xml = request.path_params.get("format") != ".json"
        refused = await self._refusal(request, fault, xml=xml)
        if refused is not None:
            return refused
        form = {k: str(v) for k, v in (await request.form()).items()}
        accepted = self._accept(form, fault, xml=xml)
        if isinstance(accepted, Response):
            return accepted
        if fault.get("drop_answer"):
            await asyncio.sleep(120)  # accepted, and the answer never comes back
        if xml:
            return Response(_xml(accepted), media_type="application/xml")
        return JSONResponse({"SMSMessage": accepted})

    async def details(self, request: Request) -> Response:
        wanted = request.path_params["msid"]
        xml = not wanted.endswith(".json")
        wanted = wanted.removesuffix(".json")
        refused = await self._refusal(request, {}, xml=xml)
        if refused is not None:
            return refused
        for record in self.messages:
            if record["Sid"] == wanted:
                entry = self._entry(record, queued=False)
                if xml:
                    return Response(_xml(entry), media_type="application/xml")
                return JSONResponse({"SMSMessage": entry})
        return _exception(404, f"SMS {wanted} not found", xml=xml)

    async def bulk(self, request: Request) -> Response:
        """Bulk with different bodies (``Messages[i][To|Body|From|SmsType|DltTemplateId]``, or
        ``Message[i][...]`` as some clients send; the outer ``From`` and ``EncodingType`` are
        used where a message has none), or static bulk (one ``Body``, ``To`` as a list or
        comma-separated: one SMS each). A message Exotel refuses is a ``RestException`` in its
        place; the others are sent."""
        fault = self._next_fault()
        refused = await self._refusal(request, fault)
        if refused is not None:
            return refused
        form = await request.form()
        outer = {k: str(v) for k, v in form.items() if "[" not in k and k != "To"}
        grouped: dict[int, dict[str, str]] = {}
        for key, value in form.multi_items():
            for prefix in ("Messages[", "Message["):
                if key.startswith(prefix) and "][" in key:
                    position, _, name = key[len(prefix) : -1].partition("][")
                    if position.isdigit():
                        grouped.setdefault(int(position), {})[name] = str(value)
        messages = [grouped[i] for i in sorted(grouped)]
        if not messages:  # static bulk: the same Body to every To
            numbers = [n.strip() for v in form.getlist("To") for n in str(v).split(",")]
            messages = [{"To": n} for n in numbers if n]
        if not messages or len(messages) > 100:
            return _exception(400, "Send 1 to 100 messages")
        entries: list[dict[str, Any]] = []
        for message in messages:
            accepted = self._accept({**outer, **message}, fault)
            if isinstance(accepted, Response):
                rest = json.loads(bytes(accepted.body))
                entries.append(rest)
            else:
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
                Route(base + "/send{format:path}", self.send, methods=["POST"]),
                Route(f"{base}/bulksend.json", self.bulk, methods=["POST"]),
                # Exotel's docs write SMS/Messages; the PyPI SDK calls Sms/Messages.
                Route("/v1/Accounts/{sid}/SMS/Messages/{msid}", self.details),
                Route("/v1/Accounts/{sid}/Sms/Messages/{msid}", self.details),
                Route("/_fake/fail", self.control_fail, methods=["POST"]),
                Route("/_fake/messages", self.control_messages, methods=["GET"]),
                Route("/_fake/reset", self.control_reset, methods=["POST"]),
                Route("/_fake/applet", self.control_applet, methods=["POST"]),
                Route("/_fake/webhook", self.control_webhook, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )
