"""The exosms command run as a user runs it: a real process, its output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def exosms(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m exosms ARGS`` in ``cwd``, with ``env`` beside the environment."""
    return subprocess.run(
        [sys.executable, "-m", "exosms", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
