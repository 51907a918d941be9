"""A real Chromium (the machine's /usr/bin/chromium, driven by Playwright) for the inbox pages.

Under CI=true a missing Chromium fails the tests; elsewhere they skip with one line.
Screenshots go to tests/artifacts/ (ignored by git, kept by CI as artifacts).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("EXOSMS_CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@pytest.fixture(scope="module")  # Playwright's sync API holds an event loop while open:
def browser() -> Iterator[Any]:  # closed after each module, so async tests can run later
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None  # type: ignore[assignment]
    if path is None or sync_playwright is None:
        reason = "Chromium not found at /usr/bin/chromium" if path is None else "no playwright"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs it)")
        pytest.skip(f"{reason}: install Debian's chromium to run the browser tests")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def shot() -> Any:
    def take(page: Any, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    return take
