"""A private PostgreSQL cluster that a fault test makes, crashes, freezes and restarts.

Made with Debian's ``initdb`` and ``pg_ctl`` in a temporary folder on a free port, run as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root). The shared
server's data is never touched. Under CI=true a missing PostgreSQL fails the test; elsewhere
it skips with one line.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from servers import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivateCluster:
    """One PostgreSQL server of our own: ``start``, ``crash``, ``freeze``, ``thaw``, ``stop``."""

    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            if os.environ.get("CI") == "true":
                pytest.fail("initdb (Debian's postgresql package) is required under CI=true")
            pytest.skip("no initdb on this machine: the PostgreSQL fault tests need one")
        self.bindir = bindir
        # Its own folder, outside pytest's (which the postgres user may not enter).
        root = Path(tempfile.mkdtemp(prefix="exosms-pg-"))
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nfsync = on\nmax_connections = 60\n"
                "shared_buffers = 32MB\n"
            )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def start(self) -> PrivateCluster:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")
        self.wait_ready()
        return self

    def crash(self) -> None:
        """Stop at once, without a checkpoint: as when the machine's database process dies."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self.thaw()
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _pids(self) -> list[int]:
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return []
        main = int(pidfile.read_text().splitlines()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(main)], capture_output=True, text=True
        ).stdout.split()
        return [main, *(int(pid) for pid in children)]

    def freeze(self) -> None:
        """SIGSTOP every server process: connections stay open, nothing answers."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("the private PostgreSQL did not come back")
