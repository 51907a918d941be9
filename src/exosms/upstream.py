"""Upstream URLs: ask an existing backend for the reply (like Kannel's get-url).

A ``200`` ``text/plain`` answer is the reply (empty: no reply). Anything else (an error
status, another content type, a timeout, a refused connection) raises
:class:`UpstreamError` saying which, so the rule's fallback is sent and the
reason stored.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from exosms.sms import IncomingSms


class UpstreamError(Exception):
    """An upstream URL did not give a usable answer."""


_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            follow_redirects=False,
            headers={"user-agent": "exosms-upstream"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        _clients[loop] = client
    return client


async def close_clients() -> None:
    """Close this event loop's upstream connection pool (at server shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


class _Quoted(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


async def fetch_reply(
    url: str, method: str, timeout: float, sms: IncomingSms, values: dict[str, Any]
) -> str | None:
    """Call the upstream and return its reply text (``None``: no reply)."""
    quoted = _Quoted({k: quote(format(v), safe="") for k, v in values.items()})
    target = url.format_map(quoted)
    form = {
        "SmsSid": sms.sms_sid,
        "From": sms.sender,
        "To": sms.recipient,
        "Body": sms.body,
        "Date": sms.date_raw,
    }
    try:
        if method == "POST":
            answer = await _client().post(target, data=form, timeout=timeout)
        else:
            answer = await _client().get(target, timeout=timeout)
    except httpx.TimeoutException:
        raise UpstreamError(f"upstream timed out after {timeout:g}s") from None
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        raise UpstreamError(f"upstream unreachable: {reason}") from None
    if answer.status_code != 200:
        raise UpstreamError(f"upstream answered {answer.status_code}")
    kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "text/plain":
        raise UpstreamError(f"upstream answered {kind or 'no content type'}, not text/plain")
    text = answer.text.rstrip("\r\n")
    return text or None
