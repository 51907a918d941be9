"""Shared by scripts/run and scripts/test: make .venv with exosms installed, using only the
Python standard library, so that both commands work on a fresh machine with Python 3.11+."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure(extras: str = "") -> Path:
    """Create or refresh .venv; reinstall only when pyproject.toml or the extras changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 is installed
        sys.exit(f"exosms needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = BIN / "python"
    stamp = VENV / ".exosms-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if not python.exists():
        print("creating .venv ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        target = f"{ROOT}[{extras}]" if extras else str(ROOT)
        print(
            f"installing exosms{'[' + extras + ']' if extras else ''} into .venv ...",
            file=sys.stderr,
        )
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                target,
            ],
            check=True,
        )
        stamp.write_text(wanted)
    return BIN
