"""``serve --workers N``: uvicorn's supervisor, saying why it replaced a worker.

uvicorn logs ``Child process [pid] died`` alike for a worker that crashed, one the kernel
killed (out of memory) and one it killed itself because it did not answer its health check
in time. Each needs a different fix, so each gets its own line (docs/deploying.md).
"""

from __future__ import annotations

import logging
import signal

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("exosms")


def why_replaced(pid: int | None, hung: bool, exitcode: int | None, timeout: float) -> str:
    """The line that says why worker ``pid`` was replaced."""
    if hung:
        return (
            f"worker [{pid}] did not answer the supervisor's health check within {timeout:g} s"
            " (a call holding the interpreter, or a machine out of CPU): killed and restarted"
        )
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's out-of-memory killer, or kill -9)" if name == "SIGKILL" else ""
        return f"worker [{pid}] was killed by {name}{hint}: restarted"
    return f"worker [{pid}] exited with code {exitcode} (its error is above): restarted"


class ExplainedMultiprocess(Multiprocess):
    """:class:`uvicorn.supervisors.multiprocess.Multiprocess`, with a reason for every
    worker it replaces. Its check, restated so that the reason is known when the worker is
    judged: a worker that did not answer the ping and is still running is hung; one that
    is no longer running died (before the ping, or while it waited)."""

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return  # stopping: no restarts
        timeout = float(self.config.timeout_worker_healthcheck)
        for idx, process in enumerate(self.processes):
            if process.process.is_alive() and process.ping(timeout):
                continue
            hung = process.process.is_alive()  # silent, yet not dead: hung (else it died)
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker [%s] failed to start: stopping", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            replacement = Process(self.config, self.sockets)
            replacement.start()
            self.processes[idx] = replacement
            log.warning(
                "%s as [%s]",
                why_replaced(process.pid, hung, process.exitcode, timeout),
                replacement.pid,
            )
