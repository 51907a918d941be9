"""The one Protocol every destination implements, and how a delivery fails."""

from __future__ import annotations

from typing import Protocol

from exosms.forwarding.envelope import Envelope


class DeliveryFailed(Exception):
    """The destination did not take the event; it is tried again later.

    ``retry_after``: seconds the destination asked us to wait (HTTP ``Retry-After``).
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class MissingExtra(Exception):
    """A destination is configured whose client library is not installed."""


class Destination(Protocol):
    """Somewhere events go: a webhook, a JetStream subject, an exchange, a stream."""

    name: str

    async def deliver(self, event: Envelope) -> None:
        """Hand ``event`` over, durably on the other side; raise :class:`DeliveryFailed`."""
        ...

    async def aclose(self) -> None:
        """Close connections (made again by the next delivery)."""
        ...
