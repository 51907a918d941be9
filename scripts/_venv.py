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
    """Create or refresh .venv; install only when pyproject.toml changed or ``extras`` are
    not installed yet (scripts/run after scripts/test finds the test extras there: nothing
    to do, where it used to reinstall the package each time, 12-16 s)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 is installed
        sys.exit(f"exosms needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = BIN / "python"
    stamp = VENV / ".exosms-installed"
    project = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists():
        print("creating .venv ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    keep = to_install(stamp.read_text() if stamp.exists() else "", project, extras)
    if keep is not None:
        target = f"{ROOT}[{','.join(sorted(keep))}]" if keep else str(ROOT)
        print(f"installing {target.replace(str(ROOT), 'exosms')} into .venv ...", file=sys.stderr)
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
        stamp.write_text(" ".join([project, *sorted(keep)]))
    return BIN


def to_install(stamp: str, project: str, extras: str) -> set[str] | None:
    """The extras to install (``None``: nothing to do), given the stamp of what is
    installed (the pyproject.toml hash, then the extras), the hash now and the extras
    wanted. Extras another command installed are kept."""
    have = stamp.split()
    installed = set(have[1:])
    wanted = {extra for extra in extras.split(",") if extra}
    if have and have[0] == project and wanted <= installed:
        return None
    return wanted | installed
