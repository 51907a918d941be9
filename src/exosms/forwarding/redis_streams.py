"""Redis Streams (redis-py, ``pip install 'exosms[redis]'``).

Each event is one ``XADD`` entry (fields ``id``, ``type``, ``sender``, ``event``: the JSON)
to ``stream``, trimmed to about ``max_len`` entries. Redis has no deduplication: after a
retry an entry may appear twice, carrying the same ``id``.
"""

from __future__ import annotations

from typing import Any

from exosms.forwarding.destination import DeliveryFailed, MissingExtra
from exosms.forwarding.envelope import Envelope


class RedisDestination:
    """Appends each event to a Redis stream."""

    def __init__(self, name: str, url: str, stream: str, max_len: int, timeout: float) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise MissingExtra(
                f"destination {name} is redis: install its client with pip install 'exosms[redis]'"
            ) from None
        self.name = name
        self.url = url
        self.stream = stream or "exosms:events"
        self.max_len = max_len
        self.timeout = timeout
        self._client: Any = None

    async def deliver(self, event: Envelope) -> None:
        """XADD the event."""
        import redis.asyncio

        if self._client is None:
            self._client = redis.asyncio.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        fields = {"id": event.id, "type": event.type, "sender": event.sender, "event": event.body}
        try:
            await self._client.xadd(self.stream, fields, maxlen=self.max_len, approximate=True)
        except Exception as error:  # redis-py's errors, and OSError under them
            await self.aclose()
            raise DeliveryFailed(f"redis: {type(error).__name__}: {error}"[:300]) from None

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                return
