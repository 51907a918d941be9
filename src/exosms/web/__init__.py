"""The web layer: the ASGI app and its endpoints (thin adapters around the engine)."""

from exosms.web.app import create_app

__all__ = ["create_app"]
