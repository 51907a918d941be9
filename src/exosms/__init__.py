"""exosms: answer the SMS your customers send to your Exotel number.

The public API is what this module exports; everything else is internal.
"""

from exosms.config import Settings, load_settings
from exosms.routing import Router
from exosms.sms import IncomingSms, Match, Reply
from exosms.store import Database, open_database
from exosms.web.app import create_app

__all__ = [
    "Database",
    "IncomingSms",
    "Match",
    "Reply",
    "Router",
    "Settings",
    "create_app",
    "load_settings",
    "open_database",
]
