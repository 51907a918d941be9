"""An HTTP webhook, signed per the Standard Webhooks specification (standardwebhooks).

Each POST carries ``webhook-id`` (the event id: the same on every retry, to deduplicate
on), ``webhook-timestamp`` (this attempt, seconds) and ``webhook-signature`` (``v1,<base64>``
for each secret, space-separated: two while rotating). A 2xx is delivered; anything else,
a timeout or a refused connection is tried again later, after ``Retry-After`` when the
receiver sends one.

aiohttp, not httpx (which the rest of exosms uses): forwarding makes one request per
event, and here httpx's connection pool costs about 1-2 ms of CPU per request under
concurrency against aiohttp's 0.15 ms (bench/forwarding.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from exosms.forwarding.destination import DeliveryFailed
from exosms.forwarding.envelope import Envelope

MAX_RETRY_AFTER = 3600.0  # seconds: a receiver asking for longer gets an hour


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), MAX_RETRY_AFTER)


class WebhookDestination:
    """POSTs each event's JSON to ``url``, signed with every secret in ``secrets``."""

    def __init__(self, name: str, url: str, secrets: list[str], timeout: float) -> None:
        self.name = name
        self.url = url
        self.signers = [Webhook(secret) for secret in secrets]
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def headers(self, event: Envelope, now: datetime | None = None) -> dict[str, str]:
        """The Standard Webhooks headers of ``event`` for an attempt at ``now``."""
        when = now or datetime.now(UTC)
        text = event.body.decode()
        signatures = " ".join(signer.sign(event.id, when, text) for signer in self.signers)
        return {
            "content-type": "application/json",
            "user-agent": "exosms-forwarding",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signatures,
        }

    async def deliver(self, event: Envelope) -> None:
        """POST the event; a 2xx is delivered."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, enable_cleanup_closed=True),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        try:
            async with self._session.post(
                self.url, data=event.body, headers=self.headers(event), allow_redirects=False
            ) as answer:
                await answer.read()
                status, wait = answer.status, answer.headers.get("retry-after")
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self.timeout:g}s") from None
        except aiohttp.ClientError as error:
            raise DeliveryFailed(f"unreachable: {str(error) or type(error).__name__}") from None
        if not 200 <= status < 300:
            raise DeliveryFailed(f"answered {status}", retry_after(wait))

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None
