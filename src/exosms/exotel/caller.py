"""Exotel's side of the applet: the query string it sends for an SMS."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from exosms.exotel.applet import IST


def new_sid() -> str:
    """A fresh SmsSid shaped like Exotel's (32 hex characters)."""
    return uuid.uuid4().hex


def exotel_now() -> str:
    """The time as Exotel's v1 APIs write it: ``YYYY-MM-DD HH:MM:SS``, India time."""
    return datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class AppletSms:
    """The SMS Exotel reports to the applet URL."""

    sender: str = "9052161119"
    recipient: str = "56070"
    body: str = "Hello World"
    sms_sid: str = field(default_factory=new_sid)
    date: str = field(default_factory=exotel_now)

    def query(self) -> str:
        """Form-encoded, ``+`` for spaces, parameters in Exotel's documented order."""
        return urlencode(
            [
                ("SmsSid", self.sms_sid),
                ("From", self.sender),
                ("To", self.recipient),
                ("Date", self.date),
                ("Body", self.body),
            ]
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "SmsSid": self.sms_sid,
            "From": self.sender,
            "To": self.recipient,
            "Date": self.date,
            "Body": self.body,
        }
