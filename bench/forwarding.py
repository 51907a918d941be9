"""The hot path with forwarding on (to a webhook, to JetStream) beside off, in one run.

Usage:  python3 bench/forwarding.py [--duration 8] [--connections 32]

For each mode (off, webhook, jetstream) it starts exosms serve (SQLite) and, when
forwarding, its receiver (bench/forward_sink.py; the JetStream server is the machine's),
then measures with wrk and bench/exotel.lua:
- at the full rate (``--connections``, no pause): replies per second, reply p99, and the
  forwarding lag (an event's time to its arrival at the receiver) p99 once it drained;
- at half the full rate of forwarding off (wrk's delay() paces every connection): reply
  p99 and lag p99.
The CPU of exosms, of the receiver and of nats-server is given per SMS, since all share
the machine's cores. Writes bench/results/forwarding-<date>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from run import BENCH, PYTHON, Server, Target, cpu_seconds, ensure_wrk, free_port, run_wrk

NATS_URL = os.environ.get("EXOSMS_TEST_NATS_URL", "nats://127.0.0.1:4222")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def nats_pid() -> int | None:
    found = subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True, text=True)
    return int(found.stdout.split()[0]) if found.stdout.strip() else None


def sink_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        data: dict[str, Any] = json.loads(answer.read())
        return data


def sink_reset(port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/reset", method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def drained(port: int, expected: int, timeout: float = 60.0) -> dict[str, Any]:
    """The sink's stats once it has ``expected`` events (or stopped getting more)."""
    deadline = time.monotonic() + timeout
    last, still = -1, 0
    while time.monotonic() < deadline:
        found = sink_stats(port)
        if found["count"] >= expected:
            return found
        still = still + 1 if found["count"] == last else 0
        if still > 40:  # two seconds without a new event
            return found
        last = found["count"]
        time.sleep(0.05)
    return sink_stats(port)


def config(mode: str, sink_port: int, stream: str) -> str:
    head = "[forwarding]\npoll_seconds = 0.1\n"
    if mode.endswith("-apart"):  # delivered by the `exosms forward` serve starts (default)
        mode = mode.removesuffix("-apart")
    elif mode != "off":
        head += 'run = "server"\n'
    if mode == "webhook":
        return head + (
            '[[forwarding.destinations]]\nname = "crm"\nkind = "webhook"\n'
            f'url = "http://127.0.0.1:{sink_port}/hook"\nsecrets = ["{SECRET}"]\n'
        )
    if mode == "jetstream":
        return head + (
            '[[forwarding.destinations]]\nname = "js"\nkind = "nats"\n'
            f'url = "{NATS_URL}"\nsubject = "{stream.lower()}.{{type}}"\nstream = "{stream}"\n'
        )
    return ""


def phase(
    wrk: str,
    url: str,
    connections: int,
    duration: int,
    pace_ms: int,
    pids: dict[str, int | None],
    cpus: set[int] | None,
) -> dict[str, Any]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    result = run_wrk(wrk, url, connections, duration, {"PACE_MS": str(pace_ms)}, cpus=cpus)
    sms = max(1, result["requests"] // 2)  # two requests per SMS
    result["cpu_us_per_sms"] = {
        name: round((cpu_seconds(pid) - before[name]) / sms * 1e6)
        for name, pid in pids.items()
        if pid
    }
    result["sms"] = sms
    return result


def forward_child(server: int, timeout: float = 15.0) -> int:
    """The pid of the ``exosms forward`` process that ``serve`` (pid ``server``) started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{server}/task").iterdir():
            for child in (task / "children").read_text().split():
                if b"forward" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
        time.sleep(0.1)
    raise RuntimeError("serve started no `exosms forward` process")


def half_pace(full: dict[str, Any], connections: int) -> int:
    """The pause (ms) before each request that makes wrk send half the ``full`` rate."""
    per_connection = full["rps"] / 2 / connections
    return max(1, round(1000 / per_connection - full["p50"]))


def run_mode(
    mode: str, wrk: str, args: argparse.Namespace, pace: int | None, tmp: Path
) -> dict[str, Any]:
    """``pace``: the half rate's pause; ``None``: worked out from this mode's full rate."""
    sink_port = free_port()
    stream = f"BENCH_{uuid.uuid4().hex[:6].upper()}"
    workdir = tmp / mode
    workdir.mkdir()
    (workdir / "exosms.toml").write_text(config(mode, sink_port, stream))
    exosms = Target(
        f"exosms-{mode}",
        [
            PYTHON,
            "-m",
            "exosms",
            "serve",
            "--port",
            "{port}",
            "--app",
            "bench_apps:router",
            "--database",
            "sqlite:///bench.db",
        ],
        {"PYTHONPATH": str(BENCH)},
    )
    sink = None
    if mode != "off":
        command = [PYTHON, str(BENCH / "forward_sink.py"), "http", str(sink_port)]
        if mode == "jetstream":
            command = [
                PYTHON,
                str(BENCH / "forward_sink.py"),
                "nats",
                str(sink_port),
                NATS_URL,
                stream,
            ]
        if mode.startswith("jetstream"):
            command = [
                PYTHON,
                str(BENCH / "forward_sink.py"),
                "nats",
                str(sink_port),
                NATS_URL,
                stream,
            ]
        sink = subprocess.Popen(command, cwd=workdir)
        time.sleep(0.5)  # the sink binds its port at once; exosms retries until it answers
    out: dict[str, Any] = {}
    try:
        with Server(exosms, free_port(), workdir) as server:
            assert server.process is not None
            url = f"http://127.0.0.1:{server.port}"
            # The `exosms forward` that serve starts (run = "process", the default).
            forward = forward_child(server.process.pid) if mode.endswith("-apart") else None
            pids = {
                "exosms": server.process.pid,
                "receiver": sink.pid if sink else None,
                "forward": forward,
                "nats-server": nats_pid() if mode.startswith("jetstream") else None,
            }
            if args.pin:  # the forwarding side on the second core, the reply side on the first
                os.sched_setaffinity(server.process.pid, {0})
                for name, pid in pids.items():
                    if pid and name != "exosms":
                        os.sched_setaffinity(pid, {1})
            run_wrk(wrk, url, 8, 2, {})  # warm up (and, for JetStream, make the stream)
            for name in ("full", "half"):
                if name == "half" and pace is None:
                    pace = half_pace(out["full"], args.connections)
                    print(f"  half rate: {pace} ms pause before each request", file=sys.stderr)
                if sink is not None:
                    drained(sink_port, 10**9, timeout=30)
                    sink_reset(sink_port)
                result = phase(
                    wrk,
                    url,
                    args.connections,
                    args.duration,
                    pace if name == "half" else 0,
                    pids,
                    {0} if args.pin else None,
                )
                result["pace_ms"] = pace if name == "half" else 0
                if sink is not None:
                    lag = drained(sink_port, 2 * result["sms"])
                    result["lag"] = lag
                out[name] = result
                print(
                    f"  {mode:<10} {name:<5} {result['rps'] / 2:8.0f} SMS/s  reply p99"
                    f" {result['p99']:7.2f} ms  lag p99 {result.get('lag', {}).get('p99_ms')} ms"
                    f"  events {result.get('lag', {}).get('count')} of {2 * result['sms']}"
                    f"  cpu/SMS {result['cpu_us_per_sms']}",
                    file=sys.stderr,
                )
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
        nats = nats_pid()
        if args.pin and nats:  # the machine's nats-server: all its cores back
            os.sched_setaffinity(nats, range(os.cpu_count() or 1))
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| forwarding | load | SMS/s | reply p99 ms | lag p50 ms | lag p99 ms | events delivered |"
        " CPU us/SMS (exosms, forward, receiver, nats) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, phases in results.items():
        for name, r in phases.items():
            lag = r.get("lag", {})
            cpu = r["cpu_us_per_sms"]
            lines.append(
                f"| {mode} | {name} | {r['rps'] / 2:,.0f} | {r['p99']:.1f} |"
                f" {lag.get('p50_ms', '-')} | {lag.get('p99_ms', '-')} |"
                f" {lag.get('count', '-')} of {2 * r['sms'] if lag else '-'} |"
                f" {cpu.get('exosms')}, {cpu.get('forward', '-')}, {cpu.get('receiver', '-')},"
                f" {cpu.get('nats-server', '-')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--modes",
        default="off,webhook,jetstream,webhook-apart,jetstream-apart",
        help="off always runs; -apart: delivered by `exosms forward` beside the server",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="exosms serve and wrk on CPU 0; exosms forward, the receiver and nats-server"
        " on CPU 1 (a core of its own for the forwarding side)",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        modes = args.modes.split(",")
        # Off first: its full rate sets the half rate every mode is measured at.
        results["off"] = run_mode("off", wrk, args, None, tmp)
        pace = results["off"]["half"]["pace_ms"]
        for mode in (m for m in modes if m != "off"):
            results[mode] = run_mode(mode, wrk, args, pace, tmp)
    text = table({m: r for m, r in results.items() if r})
    print(text)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M")
    where = (
        "exosms serve and wrk on CPU 0; exosms forward, the receiver and nats-server on CPU 1"
        if args.pin
        else "2 cores shared by exosms, wrk, exosms forward, the receiver and nats-server"
    )
    out = BENCH / "results" / f"forwarding-{stamp}.md"
    out.write_text(
        f"# Forwarding on and off, {stamp}\n\n`python3 bench/forwarding.py --duration"
        f" {args.duration} --connections {args.connections}{' --pin' if args.pin else ''}`"
        f" ({where}).\n\n{text}\n"
    )
    (out.with_suffix(".json")).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
