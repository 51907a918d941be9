"""NATS JetStream (nats-py, ``pip install 'exosms[nats]'``).

Each event is published to ``subject`` (``{type}`` filled in) with ``Nats-Msg-Id`` set to
the event id, so JetStream drops a duplicate within the stream's duplicate window, and is
delivered once the stream acknowledged it (it is stored).
"""

from __future__ import annotations

from typing import Any

from exosms.forwarding.destination import DeliveryFailed, MissingExtra
from exosms.forwarding.envelope import Envelope


class NatsDestination:
    """Publishes each event to a JetStream subject and waits for the stream's ack."""

    def __init__(self, name: str, url: str, subject: str, stream: str, timeout: float) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise MissingExtra(
                f"destination {name} is nats: install its client with pip install 'exosms[nats]'"
            ) from None
        self.name = name
        self.url = url
        self.subject = subject
        self.stream = stream
        self.timeout = timeout
        self._nc: Any = None
        self._js: Any = None

    async def _connect(self) -> Any:
        import nats
        from nats.js.errors import NotFoundError

        if self._js is not None and self._nc is not None and self._nc.is_connected:
            return self._js
        await self.aclose()
        self._nc = await nats.connect(
            self.url, connect_timeout=self.timeout, max_reconnect_attempts=0, allow_reconnect=False
        )
        self._js = self._nc.jetstream(timeout=self.timeout)
        if self.stream:
            wildcard = self.subject.replace("{type}", ">")
            try:
                await self._js.stream_info(self.stream)
            except NotFoundError:
                await self._js.add_stream(name=self.stream, subjects=[wildcard])
        return self._js

    async def deliver(self, event: Envelope) -> None:
        """Publish and wait for JetStream's ack."""
        subject = self.subject.replace("{type}", event.type)
        try:
            js = await self._connect()
            await js.publish(
                subject, event.body, headers={"Nats-Msg-Id": event.id}, timeout=self.timeout
            )
        except Exception as error:  # nats-py raises many kinds; every one means "not stored"
            await self.aclose()
            raise DeliveryFailed(f"nats: {type(error).__name__}: {error}"[:300]) from None

    async def aclose(self) -> None:
        """Close the connection."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception:
                return
