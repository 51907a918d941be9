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


class _Quoted(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


class Upstream:
    """The HTTP connection pool the upstream rules of one router share.

    Made on first use in the running event loop (a new loop, as each ``exosms rules test``
    run has, gets a new pool), and closed by :meth:`aclose` when the server stops.
    """

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._loop is not loop:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                headers={"user-agent": "exosms-upstream"},
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the pool (it is made again if a rule calls an upstream after this)."""
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    async def fetch_reply(
        self, url: str, method: str, timeout: float, sms: IncomingSms, values: dict[str, Any]
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
                answer = await self._http().post(target, data=form, timeout=timeout)
            else:
                answer = await self._http().get(target, timeout=timeout)
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
