"""RabbitMQ (aio-pika, ``pip install 'exosms[rabbitmq]'``).

Each event is published to a durable topic exchange as a persistent message whose
``message_id`` is the event id, with publisher confirms and ``mandatory``: it is delivered
once the broker confirmed it reached a queue (an exchange with no queue bound is a failure,
tried again, not a silent drop).
"""

from __future__ import annotations

import asyncio
from typing import Any

from exosms.forwarding.destination import DeliveryFailed, MissingExtra
from exosms.forwarding.envelope import Envelope


class RabbitDestination:
    """Publishes each event to ``exchange`` with ``routing_key`` (``{type}`` filled in)."""

    def __init__(
        self, name: str, url: str, exchange: str, routing_key: str, timeout: float
    ) -> None:
        try:
            import aio_pika  # noqa: F401
        except ImportError:
            raise MissingExtra(
                f"destination {name} is rabbitmq: install its client with"
                " pip install 'exosms[rabbitmq]'"
            ) from None
        self.name = name
        self.url = url
        self.exchange_name = exchange
        self.routing_key = routing_key
        self.timeout = timeout
        self._connection: Any = None
        self._exchange: Any = None

    async def _connect(self) -> Any:
        import aio_pika

        connection = self._connection
        if self._exchange is not None and connection is not None and not connection.is_closed:
            return self._exchange
        await self.aclose()
        self._connection = await aio_pika.connect(self.url, timeout=self.timeout)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return self._exchange

    async def deliver(self, event: Envelope) -> None:
        """Publish and wait for the broker's confirm."""
        import aio_pika

        message = aio_pika.Message(
            event.body,
            message_id=event.id,
            type=event.type,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            exchange = await self._connect()
            await asyncio.wait_for(
                exchange.publish(
                    message,
                    routing_key=self.routing_key.replace("{type}", event.type),
                    mandatory=True,
                ),
                self.timeout,
            )
        except Exception as error:  # aio-pika and aiormq raise many kinds: all "not confirmed"
            await self.aclose()
            raise DeliveryFailed(f"rabbitmq: {type(error).__name__}: {error}"[:300]) from None

    async def aclose(self) -> None:
        """Close the connection."""
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:
                return
