"""``serve --workers 2``: a worker that dies or hangs is replaced, and the log says which."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess, server_factory

pytestmark = pytest.mark.slow


def workers(proc: ServerProcess) -> list[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    assert proc.process is not None
    found = []
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / "stat").read_text()
            cmdline = (child / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == proc.process.pid and b"resource_tracker" not in cmdline:
            found.append(int(child.name))
    return sorted(found)


def wait_for_line(proc: ServerProcess, text: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in proc.log().splitlines():
            if text in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no log line with {text!r}:\n{proc.log()[-3000:]}")


def test_a_killed_or_hung_worker_is_replaced_and_the_log_says_why(tmp_path: Path) -> None:
    with server_factory(tmp_path) as make:
        proc = make(EXOSMS_WORKERS="2")
        first, second = workers(proc)
        os.kill(first, signal.SIGKILL)
        line = wait_for_line(proc, f"worker [{first}] was killed by SIGKILL", 15)
        assert "out-of-memory" in line
        os.kill(second, signal.SIGSTOP)  # alive, but answering nothing: hung
        try:
            wait_for_line(proc, f"worker [{second}] did not answer the supervisor's health", 30)
        finally:
            with contextlib.suppress(ProcessLookupError):  # killed by the supervisor
                os.kill(second, signal.SIGCONT)
        # Each line names the replacement, started before the line was written.
        replacements = re.findall(r"restarted as \[(\d+)\]", proc.log())
        assert len(replacements) == 2
        assert set(workers(proc)) == {int(pid) for pid in replacements}
        sms = {"SmsSid": "w1", "From": "09052161119", "Body": "ECHO still here"}
        assert httpx.get(f"{proc.url}/exotel/sms", params=sms).text == "still here"
