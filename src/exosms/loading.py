"""Load the user's reply logic from a ``module:attribute`` string."""

from __future__ import annotations

import importlib

from exosms.routing import Router


class AppLoadError(Exception):
    """The ``--app`` value does not name a Router; the message says why."""


def load_object(spec: str) -> object:
    """Import ``module:attribute`` (dots allowed in both) and return the attribute."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(f"{spec!r} must look like module:attribute (e.g. shop:router)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise AppLoadError(f"cannot import {module_name!r}: {error}") from None
    try:
        target: object = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return target


def load_router(spec: str) -> Router:
    """Import ``module:attribute`` and return the Router it names.

    The attribute may be a Router or a function without arguments that returns one. The
    ``exosms`` command makes the current directory importable, as ``python -m`` does.
    """
    target = load_object(spec)
    if isinstance(target, Router):
        return target
    if callable(target):
        try:
            built = target()
        except Exception as error:
            raise AppLoadError(f"{spec}() failed: {type(error).__name__}: {error}") from None
        if isinstance(built, Router):
            return built
        raise AppLoadError(f"{spec} returned {type(built).__name__}, not an exosms.Router")
    raise AppLoadError(f"{spec} is a {type(target).__name__}, not an exosms.Router")
