"""Start real `exosms serve` processes on loopback for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SUPPORT = Path(__file__).resolve().parent
# Most tests send many SMS from one test number: the guard rails (tested on their own in
# tests/web/test_guards.py) would rightly silence it. Tests that want them pass their own.
RELAXED_GUARDS = {
    "EXOSMS_GUARDS__REPLIES_PER_10MIN": "0",
    "EXOSMS_GUARDS__REPLIES_PER_DAY": "0",
    "EXOSMS_GUARDS__LOOP_WINDOW_SECONDS": "0",
    "EXOSMS_GUARDS__REPLY_TO_NON_NUMBERS": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """One `exosms serve` child process and where to find its files."""

    workdir: Path
    port: int
    database_url: str
    args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"  # another loopback address (127.0.0.2, ...) is another host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def calls_file(self) -> Path:
        return self.workdir / "calls.txt"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"server-{self.port}.log"

    def calls(self, sid: str | None = None) -> list[str]:
        if not self.calls_file.exists():
            return []
        lines = self.calls_file.read_text().splitlines()
        return [line for line in lines if sid is None or line == sid]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
            "EXOSMS_TEST_CALLS": str(self.calls_file),
            **RELAXED_GUARDS,
            **self.env,
        }
        command = [
            sys.executable,
            "-m",
            "exosms",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--database",
            self.database_url,
            *self.args,
        ]
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exosms serve exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"exosms serve did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as when a machine's process is killed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@contextmanager
def server_factory(
    tmp_path: Path, *, app: str = "exosms_test_apps:router", env: dict[str, str] | None = None
) -> Iterator[Callable[..., ServerProcess]]:
    """``make(config_toml, **EXOSMS_env)``: a fresh `exosms serve` on its own SQLite file and
    folder, each stopped when the block ends."""
    started: list[ServerProcess] = []

    def make(config: str = "", **extra: str) -> ServerProcess:
        workdir = tmp_path / f"s{len(started)}"
        workdir.mkdir()
        (workdir / "exosms.toml").write_text(config)
        proc = ServerProcess(
            workdir,
            free_port(),
            f"sqlite:///{workdir / 'exosms.db'}",
            args=["--app", app],
            env={**(env or {}), **extra},
        ).start()
        started.append(proc)
        return proc

    try:
        yield make
    finally:
        for proc in started:
            proc.stop()
