"""Logging setup shared by the CLI and the server's worker processes.

Every request logs one line, so the line must be cheap: the timestamp text is made once a
second, and the logging module is told not to look up callers, threads or processes
(the "Optimization" section of the logging documentation).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with stable keys: ``time`` (UTC, ISO 8601, milliseconds),
    ``level``, ``logger``, ``message`` and, for an error with a traceback, ``exception``. The
    message is the one the :class:`Redactor` left (it runs before any formatter)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{moment}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


# What never reaches a log line: a query string (message bodies, numbers, ?token=), the
# secret in a token path, the account in an Exotel API path, and phone numbers.
_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#]*|\s/[^\s?#]*)\?[^\s#\"']*", re.I)
_USERINFO = re.compile(r"(://)[^\s/@]+@")
_TOKEN_PATH = re.compile(r"(/exotel/(?:sms|webhook|status)/)[^\s/?#\"']+")
_ACCOUNT_PATH = re.compile(r"(/v1/Accounts/)[^\s/?#\"']+")
_PHONE = re.compile(r"(?<![\w+])(?:\+?91[\s-]?|0)?[6-9]\d{9}(?!\d)")
MIN_SECRET = 6  # shorter settings values are not masked as text (they would mask words)


class Redactor(logging.Filter):
    """The one redaction point for every log line (installed on the handler, so records of
    every library pass through it): query strings, token paths, Exotel account ids, phone
    numbers and the configured secrets are masked before anything is written."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "<secret>")
        if "?" in text:
            text = _QUERY.sub(r"\1?<query>", text)
        if "@" in text:
            text = _USERINFO.sub(r"\1<credentials>@", text)
        if "/exotel/" in text:
            text = _TOKEN_PATH.sub(r"\1<token>", text)
        if "/Accounts/" in text:
            text = _ACCOUNT_PATH.sub(r"\1<account>", text)
        return _PHONE.sub("<number>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def quieten_logging_overhead() -> None:
    """Turn off the logging module's per-record caller and thread lookups (no format of
    ours uses them). Process-wide: for entry points only (``serve`` and its workers)."""
    logging._srcfile = None  # no caller lookup per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def logging_config(
    level: str, secrets: Iterable[str] = (), log_format: str = "text"
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: one stream handler on stderr for everything,
    through the :class:`Redactor` (``secrets``: the values of the secret settings), as text
    lines or (``log_format="json"``) one JSON object per line."""
    quieten_logging_overhead()
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"()": "exosms.logs.FastFormatter", "format": FORMAT}
            if log_format == "text"
            else {"()": "exosms.logs.JsonFormatter"}
        },
        "filters": {"redact": {"()": "exosms.logs.Redactor", "secrets": list(secrets)}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["redact"],
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
            # Libraries whose INFO and DEBUG lines carry URLs with numbers and keys (httpx)
            # or SQL parameters (aiosqlite, asyncpg): held at WARNING whatever log_level says.
            "httpx": {"level": "WARNING", "propagate": True},
            "httpcore": {"level": "WARNING", "propagate": True},
            "aiosqlite": {"level": "WARNING", "propagate": True},
            "asyncpg": {"level": "WARNING", "propagate": True},
            # Apprise names the addresses and services it notifies: exosms says how many.
            "apprise": {"level": "WARNING", "propagate": True},
        },
    }
