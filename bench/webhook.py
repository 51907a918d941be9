"""The webhook path beside the applet path, on one exosms server, in one run.

Usage: python bench/webhook.py [--connections 32] [--duration 8]   (SQLite)

Starts ``exosms fake-exotel`` and ``exosms serve`` (the bench router, guards' caps off,
``[exotel]`` pointed at the fake, ``public_url`` at the server so that the fake's status
callbacks come back), then drives the server twice with bench/exotel_load.py: the applet
(HEAD then GET per SMS) and the webhook (a form POST per SMS, whose reply goes out through
the outbox to the fake's send API, whose status callback comes back). For each: SMS/s, the
answer's p50/p99, and the server's CPU per SMS; for the webhook also the time from the
webhook to the send (outbox ``created_at`` to ``sent_at``), counted until every reply is
sent and its callback recorded, so the whole exchange is in the CPU figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
TICKS = os.sysconf("SC_CLK_TCK")
DRAIN_SECONDS = 120  # every reply sent and its callback back, or the run is reported short


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _start(
    command: list[str], env: dict[str, str], log: Path, health: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(health, timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command[3]} did not start; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def _drive(url: str, connections: int, duration: int, webhook: bool) -> dict[str, Any]:
    command = [PYTHON, str(BENCH / "exotel_load.py"), url, "--connections", str(connections)]
    command += ["--duration", str(duration)] + (["--webhook"] if webhook else [])
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True)
    return dict(json.loads(out.stdout))


def exotel_env(fake_port: int, port: int) -> dict[str, str]:
    """``[exotel]`` pointed at the fake, callbacks back to the server, guards' caps off."""
    return {
        "EXOSMS_EXOTEL__ACCOUNT_SID": "acme",
        "EXOSMS_EXOTEL__API_KEY": "key",
        "EXOSMS_EXOTEL__API_TOKEN": "token",
        "EXOSMS_EXOTEL__API_URL": f"http://127.0.0.1:{fake_port}",
        "EXOSMS_EXOTEL__SENDER": "ACMEIN",
        "EXOSMS_EXOTEL__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "EXOSMS_GUARDS__REPLIES_PER_10MIN": "0",
        "EXOSMS_GUARDS__REPLIES_PER_DAY": "0",
    }


def _outbox(db: Path) -> tuple[int, int, list[float]]:
    """Rows, rows sent with their callback recorded, and each sent row's seconds to send."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT status, delivery_status, created_at, sent_at FROM outbox"
        ).fetchall()
    done = [r for r in rows if r[0] == "sent" and r[1] is not None]
    return len(rows), len(done), [r[3] - r[2] for r in rows if r[3] is not None]


def measure(connections: int, duration: int, workdir: Path) -> dict[str, Any]:
    """The applet and the webhook on one SQLite server; the figures of each."""
    fake_port, port = _free_port(), _free_port()
    db = workdir / "webhook-bench.db"
    fake = _start(
        [PYTHON, "-m", "exosms", "fake-exotel", "--port", str(fake_port)],
        {},
        workdir / "fake-exotel.log",
        f"http://127.0.0.1:{fake_port}/_fake/messages",
    )
    env = {"PYTHONPATH": str(BENCH), **exotel_env(fake_port, port)}
    server_command = [PYTHON, "-m", "exosms", "serve", "--port", str(port)]
    server_command += ["--database", f"sqlite:///{db}", "--app", "bench_apps:router"]
    server = _start(server_command, env, workdir / "server.log", f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}"
    try:
        _drive(url, 8, 2, webhook=False)  # warm up
        before = _cpu(server.pid)
        applet = _drive(url, connections, duration, webhook=False)
        applet["cpu_us_per_sms"] = (_cpu(server.pid) - before) / max(1, applet["sms"]) * 1e6
        queued_before, _, _ = _outbox(db)
        before = _cpu(server.pid)
        hook = _drive(url, connections, duration, webhook=True)
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            # Every webhook was answered, so every reply is queued: wait until each is sent
            # with its callback recorded.
            rows, done, _ = _outbox(db)
            if done >= rows:
                break
            time.sleep(0.2)
        drained = time.monotonic()
        hook["cpu_us_per_sms"] = (_cpu(server.pid) - before) / max(1, hook["sms"]) * 1e6
        rows, done, to_send = _outbox(db)
        ordered = sorted(to_send)
        hook |= {
            "replies_queued": rows - queued_before,
            "replies_sent_with_callback": done,
            "to_send_p50_ms": statistics.median(ordered) * 1000 if ordered else 0.0,
            "to_send_p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else 0.0,
            "drained": drained < deadline,
        }
    finally:
        _stop(server)
        _stop(fake)
    return {"applet": applet, "webhook": hook}


def summarise(result: dict[str, Any]) -> str:
    applet, hook = result["applet"], result["webhook"]
    return "\n".join(
        [
            "| path | SMS/s | answer p50 ms | answer p99 ms | webhook to send p50 / p99 ms"
            " | CPU us per SMS |",
            "|---|---|---|---|---|---|",
            f"| applet (HEAD + GET) | {applet['sms_per_s']:,.0f} | {applet['p50_ms']:.2f} | "
            f"{applet['p99_ms']:.2f} | | {applet['cpu_us_per_sms']:,.0f} |",
            f"| webhook (POST, send, callback) | {hook['sms_per_s']:,.0f} | {hook['p50_ms']:.2f} | "
            f"{hook['p99_ms']:.2f} | {hook['to_send_p50_ms']:,.0f} / {hook['to_send_p99_ms']:,.0f}"
            f" | {hook['cpu_us_per_sms']:,.0f} |",
            "",
            f"webhook answer p99 / applet: {hook['p99_ms'] / max(applet['p99_ms'], 1e-9):.1f}x;"
            f" CPU per SMS / applet: {hook['cpu_us_per_sms'] / applet['cpu_us_per_sms']:.1f}x;"
            f" {hook['replies_sent_with_callback']:,} of {hook['replies_queued']:,} replies sent"
            f" with their callback{'' if hook['drained'] else ' (not drained in time)'}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="exosms-webhook-bench-") as tmp:
        result = measure(args.connections, args.duration, Path(tmp))
    print(json.dumps(result), file=sys.stderr)
    print(summarise(result))


if __name__ == "__main__":
    main()
