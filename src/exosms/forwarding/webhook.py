"""An HTTP webhook, signed per the Standard Webhooks specification (standardwebhooks).

Each POST carries ``webhook-id`` (the event id: the same on every retry, to deduplicate
on), ``webhook-timestamp`` (this attempt, seconds) and ``webhook-signature`` (``v1,<base64>``
for each secret, space-separated: two while rotating). A 2xx is delivered; anything else,
a timeout or a refused connection is tried again later, after ``Retry-After`` when the
receiver sends one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
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
        self._client: httpx.AsyncClient | None = None

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
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            )
        try:
            answer = await self._client.post(
                self.url, content=event.body, headers=self.headers(event), timeout=self.timeout
            )
        except httpx.TimeoutException:
            raise DeliveryFailed(f"no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"unreachable: {str(error) or type(error).__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise DeliveryFailed(
                f"answered {answer.status_code}", retry_after(answer.headers.get("retry-after"))
            )

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
