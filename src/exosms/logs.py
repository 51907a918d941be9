"""Logging setup shared by the CLI and the server's worker processes.

Every request logs one line, so the line must be cheap: the timestamp text is made once a
second, and the logging module is told not to look up callers, threads or processes
(the "Optimization" section of the logging documentation).
"""

from __future__ import annotations

import logging
import time
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class FastFormatter(logging.Formatter):
    """A formatter that renders each second's timestamp once, not once per record."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"


def quieten_logging_overhead() -> None:
    logging._srcfile = None  # no caller lookup per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: one stream handler on stderr for everything."""
    quieten_logging_overhead()
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"()": "exosms.logs.FastFormatter", "format": FORMAT}},
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
