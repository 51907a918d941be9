"""The public API is what exosms/__init__.py exports: changing it must be deliberate."""

from __future__ import annotations

import exosms

PUBLIC = {
    "Database",
    "IncomingSms",
    "Match",
    "Reply",
    "Router",
    "Settings",
    "create_app",
    "load_settings",
    "open_database",
}


def test_public_names_are_exactly_these() -> None:
    assert set(exosms.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(exosms, name) is not None


def test_public_api_has_docstrings() -> None:
    for name in PUBLIC:
        assert getattr(exosms, name).__doc__, f"exosms.{name} has no docstring"


def test_import_does_no_work() -> None:
    import subprocess
    import sys

    # Importing exosms must not connect, open files or start threads.
    code = "import threading, exosms; print(threading.active_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
