"""Forwarding: every event to the business's own systems, at least once, in order per sender.

``envelope`` is the JSON every destination receives; ``destination`` the one Protocol each
kind implements (``webhook``, ``nats``, ``rabbitmq``, ``redis_streams``); ``forwarder`` the
task that hands events out and delivers them. docs/forwarding.md has the promise.
"""
