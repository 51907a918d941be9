"""Exotel's SMS send API: ``POST /v1/Accounts/<sid>/Sms/send.json`` (and ``bulksend.json``).

Async (aiohttp: a third of httpx's CPU per request here, bench/README.md), typed results
and typed errors. Every failure falls in one of three classes,
because Exotel documents no idempotency key and each POST it accepted is an SMS on the
customer's phone and on the bill:

- retried here with backoff (and ``Retry-After``): no connection could be made (the request
  was never written), 429, 503;
- final: every other 4xx, with Exotel's own code and message;
- possibly accepted (:class:`Ambiguous`), never retried: 408, any other 5xx, a timeout after
  the request was written, a connection lost mid-answer. The outbox waits for the status
  callback, then holds the SMS for a person.

The API token is a secret: it is sent as HTTP Basic auth and never appears in a log line or
an error message.

Why one module (about 450 lines): the request, the three failure classes and the parsing of
Exotel's answers (JSON or XML) are one contract, checked together against the fake Exotel.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import re
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from exosms.dlt import TemplateRegistry
from exosms.exotel import forms
from exosms.segments import GSM7, segment

log = logging.getLogger("exosms.exotel")

BULK_LIMIT = 100  # messages per bulksend call (Exotel's documented limit)
BODY_LIMIT = 2000  # characters per Body (Exotel's documented limit)
HOSTS = {"singapore": "https://api.exotel.com", "mumbai": "https://api.in.exotel.com"}
RETRY_STATUSES = {429, 503}  # rate limit, platform throttle: retry with backoff


# Failures before the request was written: Exotel cannot have seen it (no connection, or
# none in time; a URL that is not http(s)).
_NOT_SENT = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)


class ExotelError(Exception):
    """Exotel refused or failed a request. ``status`` is the HTTP status (0: no answer);
    ``code`` is Exotel's own error code when its answer carried one."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        text = f"Exotel answered {status}: {message}" if status else message
        super().__init__(f"{text} (code {code})" if code else text)
        self.status = status
        self.message = message
        self.code = code

    @property
    def is_retryable(self) -> bool:
        """Safe to send again: Exotel cannot have accepted it."""
        return self.status in RETRY_STATUSES or (self.status == 0 and not self.is_ambiguous)

    @property
    def is_ambiguous(self) -> bool:
        """Exotel may have accepted it: never resend without asking."""
        return False


class Ambiguous(ExotelError):
    """The request was written, and no clear answer came back: 408, a 5xx other than 503,
    a timeout while waiting, or a connection lost mid-answer. It may have been sent."""

    @property
    def is_ambiguous(self) -> bool:
        """Always: Exotel may have accepted the SMS."""
        return True


class AuthenticationError(ExotelError):
    """401: the API key or token is wrong."""


class AccountError(ExotelError):
    """402 or 403: the account, its balance or its permissions."""


class InvalidRequest(ExotelError):
    """400: a parameter is wrong (Exotel also answers this for DLT mismatches)."""


class RateLimited(ExotelError):
    """429 after every retry."""


class Unavailable(ExotelError):
    """503, another 5xx, or no answer, after every retry."""


class DltRefused(ExotelError):
    """Not sent: the body matches no approved DLT template (``enforce`` mode)."""


def _error(status: int, message: str, code: str | None = None) -> ExotelError:
    kinds: dict[int, type[ExotelError]] = {
        400: InvalidRequest,
        401: AuthenticationError,
        402: AccountError,
        403: AccountError,
        408: Ambiguous,
        429: RateLimited,
        503: Unavailable,
    }
    kind = kinds.get(status, Ambiguous if status >= 500 else ExotelError)
    return kind(status, message, code)


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One SMS to send. Unset fields take the client's defaults."""

    to: str
    body: str
    sender: str | None = None
    template_id: str | None = None
    sms_type: str | None = None
    encoding: str | None = None  # plain | unicode; chosen from the text when unset
    priority: str | None = None  # normal | high (high: OTPs only)
    status_callback: str | None = None
    custom_field: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What Exotel said about one SMS: its SmsSid and status (``queued`` at first). In a bulk
    answer, a message Exotel refused has no ``sid`` and carries Exotel's ``error``."""

    sid: str
    status: str
    to: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    error: str | None = None

    @property
    def is_sent(self) -> bool:
        """Exotel took the SMS: it has a sid and no error."""
        return bool(self.sid) and self.error is None


def _message_entries(data: Any) -> list[dict[str, Any]]:
    """Exotel's JSON wraps each SMS as ``{"SMSMessage": {...}}``; bulk answers list them."""
    if isinstance(data, dict) and "SMSMessage" in data:
        return [data["SMSMessage"]]
    if isinstance(data, dict):
        for key in ("SMSMessages", "SmsMessages", "Messages"):
            if isinstance(data.get(key), list):
                return [e.get("SMSMessage", e) if isinstance(e, dict) else {} for e in data[key]]
    if isinstance(data, list):
        return [e.get("SMSMessage", e) if isinstance(e, dict) else {} for e in data]
    return []


def _bulk_entries(data: Any) -> list[dict[str, Any]]:
    """A bulk answer's entries in order, refusals (``RestException``) kept in their place."""
    if isinstance(data, dict):
        for key in ("SMSMessages", "SmsMessages", "Messages"):
            if isinstance(data.get(key), list):
                return [e if isinstance(e, dict) else {} for e in data[key]]
        if "SMSMessage" in data:
            return [data]
    if isinstance(data, list):
        return [e if isinstance(e, dict) else {} for e in data]
    return []


def _bulk_result(to: str, entry: dict[str, Any] | None) -> SendResult:
    if entry is None:
        # Exotel answered for fewer messages than were posted: this one may have been sent.
        return SendResult("", "", to, {}, "no answer for this message in the bulk answer")
    rest = entry.get("RestException")
    if isinstance(rest, dict):
        code = rest.get("Code")
        message = str(rest.get("Message") or "refused")[:300]
        return SendResult("", "", to, entry, f"{message} (code {code})" if code else message)
    message = entry.get("SMSMessage", entry)
    sid = str(message.get("Sid") or "") if isinstance(message, dict) else ""
    status = str(message.get("Status") or "") if isinstance(message, dict) else ""
    if not sid:
        return SendResult("", status, to, entry, "the bulk answer has no Sid for this message")
    return SendResult(sid, status, to, message)


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer, read whole."""

    status: int
    reason: str
    body: bytes
    retry_after: str | None

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _exception(answer: _Answer) -> tuple[str, str | None]:
    """Exotel's error message and code, from its JSON or XML ``RestException``."""
    message: Any = None
    code: Any = None
    try:
        data = answer.json()
        rest = data.get("RestException", data) if isinstance(data, dict) else {}
        message = rest.get("Message") or rest.get("message")
        code = rest.get("Code") or rest.get("code")
    except ValueError:
        found = re.search(r"<Message>(.*?)</Message>", answer.text, re.S)
        message = found[1].strip() if found else None
        found = re.search(r"<Code>(.*?)</Code>", answer.text, re.S)
        code = found[1].strip() if found else None
    text = str(message)[:300] if message else (answer.reason or "error")
    return text, str(code)[:20] if code not in (None, "") else None


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...)."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class Client:
    """Exotel's send API. Use ``async with Client(...) as exotel: await exotel.send(...)``."""

    def __init__(
        self,
        account_sid: str,
        api_key: str,
        api_token: str,
        *,
        base_url: str = HOSTS["singapore"],
        sender: str | None = None,
        dlt_entity_id: str | None = None,
        sms_type: str = "transactional",
        registry: TemplateRegistry | None = None,
        dlt_mode: str = "auto",
        max_retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 10.0,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        """``timeout``: for the connection, and again for the answer; ``http``: a session
        to share (this client then leaves it open)."""
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self.sender = sender
        self.dlt_entity_id = dlt_entity_id
        self.sms_type = sms_type
        self.registry = registry
        self.dlt_mode = dlt_mode
        self.max_retries = max_retries
        self.backoff = backoff
        credentials = base64.b64encode(f"{api_key}:{api_token}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {credentials}"}  # never logged
        self._form_headers = self._headers | {"Content-Type": "application/x-www-form-urlencoded"}
        self._timeout = aiohttp.ClientTimeout(connect=timeout, sock_read=timeout)
        self._http = http  # made on first use, inside the event loop that uses it
        self._owns_http = http is None
        self._proxy: str | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, if this client made it."""
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def _request(self, method: str, url: str, data: dict[str, str] | None) -> _Answer:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
            # HTTPS_PROXY and NO_PROXY are honoured, as they were with httpx; read once
            # (aiohttp's trust_env reads them in a thread for every request).
            self._proxy = _env_proxy(self.base_url)
        # The form encoded here: aiohttp's FormData costs a tenth of a send's CPU.
        body = None if data is None else forms.encode(data)
        headers = self._headers if data is None else self._form_headers
        async with self._http.request(
            method, url, data=body, headers=headers, proxy=self._proxy
        ) as answer:
            content = await answer.read()
            retry_after = answer.headers.get("Retry-After")
            return _Answer(answer.status, answer.reason or "", content, retry_after)

    def _url(self, endpoint: str) -> str:
        return f"{self.base_url}/v1/Accounts/{self.account_sid}/Sms/{endpoint}"

    def prepare(self, sms: OutgoingSms) -> dict[str, str]:
        """The form fields for one SMS, after the DLT gate. Raises :class:`DltRefused`."""
        if len(sms.body) > BODY_LIMIT:
            raise InvalidRequest(0, f"Body has {len(sms.body)} characters; at most {BODY_LIMIT}")
        template_id = sms.template_id
        registry = self.registry
        mode = self.dlt_mode
        if mode == "auto":
            mode = "enforce" if registry is not None and len(registry) else "warn"
        if mode != "off" and registry is not None and len(registry):
            verdict = registry.match(sms.body)
            if verdict.matched:
                if template_id is not None and template_id != verdict.template_id:
                    log.warning(
                        "template %s given, but the body matches %s",
                        template_id,
                        verdict.template_id,
                    )
                template_id = template_id or verdict.template_id
            elif mode == "enforce":
                raise DltRefused(0, f"not sent: {verdict.reason}")
            else:
                log.warning("sending a body that matches no DLT template: %s", verdict.reason)
        sender = sms.sender or self.sender
        if not sender:
            raise InvalidRequest(0, "no sender: set [exotel] sender (your ExoPhone or DLT header)")
        fields = {
            "From": sender,
            "To": sms.to,
            "Body": sms.body,
            "EncodingType": sms.encoding
            or ("plain" if segment(sms.body).encoding == GSM7 else "unicode"),
            "SmsType": sms.sms_type or self.sms_type,
        }
        optional = {
            "DltTemplateId": template_id,
            "DltEntityId": self.dlt_entity_id,
            "Priority": sms.priority,
            "StatusCallback": sms.status_callback,
            "CustomField": sms.custom_field,
        }
        fields.update({k: v for k, v in optional.items() if v})
        return fields

    async def _post(self, endpoint: str, data: dict[str, str]) -> Any:
        attempt = 0
        while True:
            try:
                answer = await self._request("POST", self._url(endpoint), data)
            except _NOT_SENT as error:
                failure: ExotelError = Unavailable(
                    0, f"could not reach Exotel: {type(error).__name__}"
                )
                retry_after = None
            except (aiohttp.ClientError, TimeoutError) as error:
                # Written, then no answer (a timeout, a reset): it may have been accepted.
                raise Ambiguous(
                    0, f"no answer from Exotel after the request: {type(error).__name__}"
                ) from None
            else:
                if answer.status < 300:
                    try:
                        return answer.json()
                    except ValueError:
                        raise Ambiguous(answer.status, "the answer is not JSON") from None
                failure = _error(answer.status, *_exception(answer))
                retry_after = answer.retry_after
            if not failure.is_retryable or attempt >= self.max_retries:
                raise failure
            delay = self.backoff * (2**attempt) * (0.5 + random.random() / 2)
            if retry_after is not None:
                with contextlib.suppress(ValueError):
                    delay = max(delay, min(float(retry_after), 60.0))
            log.info("Exotel answered %s; retrying in %.2fs", failure.status or "nothing", delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def send(self, to: str, body: str, **options: Any) -> SendResult:
        """Send one SMS; see :class:`OutgoingSms` for the options."""
        sms = OutgoingSms(to=to, body=body, **options)
        return await self.send_prepared(self.prepare(sms))

    async def send_prepared(self, fields: dict[str, str]) -> SendResult:
        """Send one SMS whose form fields :meth:`prepare` made (and the DLT gate passed)."""
        data = await self._post("send.json", fields)
        entries = _message_entries(data)
        if not entries:
            raise Unavailable(200, "the answer has no SMSMessage")
        entry = entries[0]
        status = str(entry.get("Status", ""))
        return SendResult(str(entry.get("Sid", "")), status, fields["To"], entry)

    async def details(self, exotel_sid: str) -> dict[str, Any]:
        """What Exotel knows of one sent SMS (``GET .../SMS/Messages/<SmsSid>.json``): its
        ``Status``, ``DetailedStatus``, ``DetailedStatusCode``, ``SmsUnits``, ``DateSent``."""
        url = f"{self.base_url}/v1/Accounts/{self.account_sid}/SMS/Messages/{exotel_sid}.json"
        try:
            answer = await self._request("GET", url, None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unavailable(0, f"no answer from Exotel: {type(error).__name__}") from None
        if answer.status >= 300:
            raise _error(answer.status, *_exception(answer))
        try:
            entries = _message_entries(answer.json())
        except ValueError:
            raise Unavailable(answer.status, "the answer is not JSON") from None
        if not entries:
            raise Unavailable(answer.status, "the answer has no SMSMessage")
        return entries[0]

    async def send_bulk(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        """Send many SMS with different bodies, 100 per call (larger lists are split)."""
        results: list[SendResult] = []
        for start in range(0, len(messages), BULK_LIMIT):
            chunk = messages[start : start + BULK_LIMIT]
            data: dict[str, str] = {}
            for index, sms in enumerate(chunk):
                for key, value in self.prepare(sms).items():
                    data[f"Messages[{index}][{key}]"] = value
            answer = await self._post("bulksend.json", data)
            entries = _bulk_entries(answer)
            for index, sms in enumerate(chunk):
                entry = entries[index] if index < len(entries) else None
                results.append(_bulk_result(sms.to, entry))
        return results


class SyncClient:
    """:class:`Client` for scripts without an event loop: the same arguments and methods.

    ``with SyncClient("acme1", key, token, sender="ACMEIN") as exotel:
    exotel.send("+919052161119", "...")``. Each call runs on a private event loop.
    """

    def __init__(self, *args: Any, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = Client(*args, **options)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and the private event loop."""
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.aclose())
            self._loop.close()

    def send(self, to: str, body: str, **options: Any) -> SendResult:
        """:meth:`Client.send`, waited for."""
        return self._loop.run_until_complete(self._client.send(to, body, **options))

    def send_bulk(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        """:meth:`Client.send_bulk`, waited for."""
        return self._loop.run_until_complete(self._client.send_bulk(messages))
