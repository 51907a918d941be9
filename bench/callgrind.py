"""Instructions per SMS of `exosms serve` (SQLite, one worker), counted by callgrind.

Usage:  python3 bench/callgrind.py [--sms 300] [--runs 3] [--compare REV]

Wall-clock benchmarks on a shared 2-core machine move by 10 to 20% between runs; the number
of instructions an SMS costs does not depend on the neighbours. Each run starts the server
under ``valgrind --tool=callgrind`` with instrumentation off, answers 100 SMS to warm up,
then counts the instructions of ``--sms`` more (HEAD then GET each, as Exotel sends them;
half get a reply), every thread included. Background tasks (lease renewal, the indexer, the
reload watchers) run during the count too, so runs differ by a few per cent: the median of
``--runs`` is reported. ``--compare REV`` runs exosms at git revision REV (a temporary
worktree, this venv) in alternation with today's. Needs valgrind (Debian package
`valgrind`).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import revisions

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
RELAXED = {
    "EXOSMS_GUARDS__REPLIES_PER_10MIN": "0",
    "EXOSMS_GUARDS__REPLIES_PER_DAY": "0",
    "EXOSMS_GUARDS__LOOP_WINDOW_SECONDS": "0",
    "EXOSMS_LOG_LEVEL": "warning",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL)


def one_run(src: Path | None, count: int) -> float:
    """Instructions per SMS of one server run (``src``: another checkout's src/)."""
    with tempfile.TemporaryDirectory(prefix="exosms-callgrind-") as work:
        port = free_port()
        env = {**os.environ, **RELAXED}
        if src is not None:
            env["PYTHONPATH"] = str(src)
        out = f"{work}/callgrind.out"
        server = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}.%p",
                PYTHON,
                "-m",
                "exosms",
                "serve",
                "--port",
                str(port),
                "--database",
                f"sqlite:///{work}/bench.db",
            ],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/exotel/sms"
        try:
            with httpx.Client(timeout=60) as http:
                deadline = time.monotonic() + 300
                while True:
                    try:
                        http.get(f"http://127.0.0.1:{port}/healthz")
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)

                def sms(n: int, tag: str) -> None:
                    body = "ECHO hello there" if n % 2 else "nothing matches this"
                    query = {
                        "SmsSid": f"{tag}{n}-{uuid.uuid4().hex[:8]}",
                        "From": f"90{n:08d}",
                        "To": "56070",
                        "Body": body,
                    }
                    http.head(url, params=query)
                    http.get(url, params=query)

                for n in range(100):
                    sms(n, "warm")
                control("-i", "on", str(server.pid))
                for n in range(count):
                    sms(n, "count")
                control("-i", "off", str(server.pid))
                control("-d", str(server.pid))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(120)
        total = 0
        for path in Path(work).glob("callgrind.out.*"):
            found = re.search(r"^totals:\s+(\d+)", path.read_text(errors="replace"), re.M)
            total += int(found.group(1)) if found else 0
        return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sms", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare", default="")
    args = parser.parse_args()
    versions: list[tuple[str, Path | None]] = [("now", None)]
    worktree = None
    if args.compare:
        worktree = revisions.checkout(args.compare)
        versions.append((args.compare, worktree / "src"))
    results: dict[str, list[float]] = {name: [] for name, _ in versions}
    try:
        for _ in range(args.runs):
            for name, src in versions:
                results[name].append(one_run(src, args.sms))
                print(f"{name}: {results[name][-1]:,.0f} instructions per SMS", file=sys.stderr)
    finally:
        if worktree is not None:
            revisions.remove(worktree)
    print(f"| version | instructions per SMS (median of {args.runs}) | runs |")
    print("|---|---|---|")
    for name, values in results.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):,.0f} | {runs} |")


if __name__ == "__main__":
    main()
