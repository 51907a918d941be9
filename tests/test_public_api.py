"""The public API is what exosms/__init__.py exports: changing it must be deliberate."""

from __future__ import annotations

import exosms

PUBLIC = {
    "Client",
    "Database",
    "ExotelError",
    "IncomingSms",
    "OutgoingSms",
    "SendResult",
    "TemplateError",
    "TemplateRegistry",
    "converse",
    "segment",
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
    import importlib
    import inspect

    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            assert obj.__doc__, f"{module_name}.{name} has no docstring"
            if not inspect.isclass(obj):
                continue
            for attr, member in vars(obj).items():
                if attr.startswith("_") or attr == "settings_customise_sources":  # pydantic's
                    continue
                function = member.fget if isinstance(member, property) else member
                function = getattr(function, "__func__", function)
                if inspect.isfunction(function):
                    assert function.__doc__, f"{module_name}.{name}.{attr} has no docstring"


def test_import_does_no_work() -> None:
    import subprocess
    import sys

    # Importing exosms must not connect, open files or start threads.
    code = "import threading, exosms; print(threading.active_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


# The modules the docs may send users to besides `exosms` itself (exosms/__init__.py).
PUBLIC_MODULES = ("exosms", "exosms.dlt", "exosms.segments", "exosms.testing")


def _documented_names() -> list[tuple[str, str, str]]:
    """(page, module, name) for every `from exosms... import name` and every dotted
    `exosms.module.name` in README.md, docs/ (but the internal map) and examples/."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    pages += sorted((root / "examples").glob("*.py"))
    found = []
    for page in pages:
        if page.name == "architecture.md":
            continue
        text = page.read_text()
        for module, names in re.findall(r"from (exosms(?:\.\w+)*) import ([\w, ]+)", text):
            found += [(page.name, module, n.strip()) for n in names.split(",") if n.strip()]
        for dotted in re.findall(r"(?<![\w/])(exosms(?:\.[A-Za-z_]\w*)+)(?![\w/])", text):
            module, _, name = dotted.rpartition(".")
            if name not in ("toml", "db"):  # file names: exosms.toml, exosms.db
                found.append((page.name, module, name))
    return found


def test_every_import_the_docs_show_is_public() -> None:
    import importlib

    documented = _documented_names()
    assert len(documented) >= 8  # the scan itself works
    for page, module, name in documented:
        if f"{module}.{name}" in PUBLIC_MODULES:
            continue  # the module itself
        assert module in PUBLIC_MODULES, f"{page}: {module} is not a public module"
        assert name in importlib.import_module(module).__all__, f"{page}: {module}.{name}"
