"""The message brokers on this machine (NATS with JetStream, RabbitMQ, Redis), for the
forwarding tests. Under CI=true a broker that does not answer fails its tests; elsewhere
they skip with one line (.ci/run starts each one that is down)."""

from __future__ import annotations

import os
import socket

import pytest

NATS_URL = os.environ.get("EXOSMS_TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("EXOSMS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("EXOSMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_PORTS = {"nats": 4222, "rabbitmq": 5672, "redis": 6379}


def require(broker: str) -> None:
    """Skip (or fail under CI) unless ``broker`` accepts connections on loopback."""
    try:
        with socket.create_connection(("127.0.0.1", _PORTS[broker]), timeout=2):
            return
    except OSError as error:
        message = f"no {broker} on 127.0.0.1:{_PORTS[broker]} ({type(error).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{broker} is required under CI=true: {message}")
        pytest.skip(message)
