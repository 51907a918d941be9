"""Logging setup shared by the CLI and the server's worker processes."""

from __future__ import annotations

from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: one stream handler on stderr for everything."""
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": upper},
        "loggers": {
            # uvicorn's access log prints full URLs, which carry message bodies and, with
            # token auth, the secret: exosms logs its own line per request instead.
            "uvicorn.access": {"level": "WARNING", "propagate": True},
            "uvicorn": {"level": upper, "propagate": True},
            "uvicorn.error": {"level": upper, "propagate": True},
            "alembic": {"level": "WARNING", "propagate": True},
            "sqlalchemy": {"level": "WARNING", "propagate": True},
        },
    }
