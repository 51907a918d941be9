"""Another git revision of exosms beside this checkout, for `--compare REV`."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(revision: str) -> Path:
    """A temporary worktree at ``revision``; put its ``src/`` first on PYTHONPATH to run it
    with this venv (it shadows this checkout's editable install). ``remove()`` it after."""
    worktree = Path(tempfile.mkdtemp(prefix="exosms-rev-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), revision],
        check=True,
        capture_output=True,
    )
    return worktree


def remove(worktree: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False
    )
