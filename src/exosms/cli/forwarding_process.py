"""The `exosms forward` process that `exosms serve` starts beside itself, and restarts.

The server passes its settings in the environment (as to its workers) and its own pid in
``EXOSMS_FORWARD_PARENT``: the forwarder stops when the server is gone, even after a
SIGKILL that left no chance to stop it (docs/forwarding.md).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

log = logging.getLogger("exosms.forwarding")

PARENT_ENV = "EXOSMS_FORWARD_PARENT"
RESTART_WAIT = (1.0, 30.0)  # seconds before a restart: the first, the longest


class ForwardingProcess:
    """One child `exosms forward`, started again (with a growing wait) if it exits."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start the child and the thread that restarts it."""
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="exosms-forward", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self._process = subprocess.Popen([sys.executable, "-m", "exosms", "forward"], env=env)

    def _watch(self) -> None:
        wait = RESTART_WAIT[0]
        while not self._stopping.is_set():
            assert self._process is not None
            code = self._process.wait()
            if self._stopping.is_set():
                return
            log.error("the forwarding process exited (%s); starting it again in %.0fs", code, wait)
            if self._stopping.wait(wait):
                return
            wait = min(wait * 2, RESTART_WAIT[1])
            self._spawn()

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 15 s) and its watcher."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._watcher is not None:
            self._watcher.join(5)
