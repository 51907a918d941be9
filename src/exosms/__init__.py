"""exosms: answer the SMS your customers send to your Exotel number.

The public API is what this module exports, and the documented public modules
``exosms.dlt``, ``exosms.segments`` and ``exosms.testing`` (each lists its names in
``__all__``); everything else is internal. ``tests/test_public_api.py`` keeps every import
the docs show among them.
"""

from exosms.config import Settings, load_settings
from exosms.dlt import TemplateError, TemplateRegistry
from exosms.exotel.client import Client, ExotelError, OutgoingSms, SendResult
from exosms.routing import Router
from exosms.segments import segment
from exosms.sms import IncomingSms, Match, Reply
from exosms.store import Database, open_database
from exosms.testing import converse
from exosms.web.app import create_app

__all__ = [
    "Client",
    "Database",
    "ExotelError",
    "IncomingSms",
    "Match",
    "OutgoingSms",
    "Reply",
    "Router",
    "SendResult",
    "Settings",
    "TemplateError",
    "TemplateRegistry",
    "converse",
    "create_app",
    "load_settings",
    "open_database",
    "segment",
]
