"""Destinations and the forwarder built from ``[forwarding]``: one place knows every kind."""

from __future__ import annotations

from exosms.forwarding.destination import Destination
from exosms.forwarding.forwarder import Forwarder, Limits
from exosms.forwarding.nats import NatsDestination
from exosms.forwarding.rabbitmq import RabbitDestination
from exosms.forwarding.redis_streams import RedisDestination
from exosms.forwarding.webhook import WebhookDestination
from exosms.numbers import normalise
from exosms.settings_sections import DestinationSettings, ForwardingSettings
from exosms.store.events import EventStore, Route


def destination_of(settings: DestinationSettings) -> Destination:
    """The destination ``settings`` describe (raises ``MissingExtra`` without its client)."""
    url, timeout = settings.url.get_secret_value(), settings.timeout_seconds
    if settings.kind == "webhook":
        secrets = [s.get_secret_value() for s in settings.secrets]
        return WebhookDestination(settings.name, url, secrets, timeout)
    if settings.kind == "nats":
        return NatsDestination(settings.name, url, settings.subject, settings.stream, timeout)
    if settings.kind == "rabbitmq":
        return RabbitDestination(
            settings.name, url, settings.exchange, settings.routing_key, timeout
        )
    return RedisDestination(settings.name, url, settings.stream, settings.max_len, timeout)


def route_of(settings: DestinationSettings) -> Route:
    """The filter of a destination (numbers in their stored form)."""
    return Route(
        name=settings.name,
        events=frozenset(settings.events),
        recipients=frozenset(normalise(n) for n in settings.recipients),
        rules=frozenset(r.casefold() for r in settings.rules),
        outcomes=frozenset(settings.outcomes),
    )


def forwarder_of(settings: ForwardingSettings, events: EventStore) -> Forwarder:
    """The forwarder for ``[forwarding]`` (with no destination it only marks events handed
    out, so that a destination added later starts from then; replay sends older ones)."""
    destinations = [
        (destination_of(d), route_of(d), d.timeout_seconds) for d in settings.destinations
    ]
    limits = Limits(
        poll_seconds=settings.poll_seconds,
        max_attempts=settings.max_attempts,
        max_age_seconds=settings.max_age_seconds,
        batch=settings.batch,
        concurrency=settings.concurrency,
        lease_seconds=settings.lease_seconds,
    )
    return Forwarder(events, destinations, limits)
