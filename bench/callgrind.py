"""Instructions per SMS of `exosms serve` (SQLite, one worker) and of the bare responder,
counted by callgrind.

Usage:  python3 bench/callgrind.py [--sms 300] [--runs 3] [--compare REV] [--no-bare]
                                   [--webhook]

Wall-clock benchmarks on a shared 2-core machine move by 10 to 20% between runs; the number
of instructions an SMS costs does not depend on the neighbours. Each run starts the server
under ``valgrind --tool=callgrind`` with instrumentation off, answers 100 SMS to warm up,
then counts the instructions of ``--sms`` more (HEAD then GET each, as Exotel sends them;
half get a reply), every thread included. exosms runs as bench/run.py runs it: its default
settings (durable SQLite, guards on, a log line per request at info) and the bench's keyword
router; **bare** is bench/run.py's ceiling (bench_apps.bare on uvicorn with httptools and
uvloop), counted the same way. Background tasks (lease renewal, the indexer, the reload
watchers) run during the count too, so runs differ by a few per cent: the median of
``--runs`` is reported. ``--compare REV`` runs exosms at git revision REV (a temporary
worktree, this venv) in alternation with today's. ``--webhook`` adds the webhook's whole
exchange beside the applet (**exosms-webhook**: a form POST per SMS, eight at a time, each
answered with a reply that the outbox sends to ``exosms fake-exotel``, run outside valgrind,
whose status callback comes back; counted until every reply is sent with its callback
recorded). Needs valgrind (Debian package
`valgrind`); bench/run.py reports these figures too when valgrind is there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import revisions
from webhook import exotel_env

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
EXOSMS = ["-m", "exosms", "serve", "--app", "bench_apps:router", "--port", "{port}"]
BARE = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"]
BARE += ["--no-server-header", "--loop", "uvloop", "--http", "httptools", "bench_apps:bare"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL)


def _webhooks(url: str, tag: str, count: int, db: Path) -> None:
    """``count`` webhook POSTs, eight at a time, then wait until every reply is sent with
    its status callback recorded."""

    async def post_all() -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            for start in range(0, count, 8):
                forms = [
                    {"SmsSid": f"{tag}{n}-{uuid.uuid4().hex[:8]}", "From": f"9{n:09d}"}
                    | {"To": "08039591234", "Body": "ECHO Thank you for your order"}
                    for n in range(start, min(count, start + 8))
                ]
                answers = await asyncio.gather(*(http.post(url, data=f) for f in forms))
                if any(a.status_code != 200 for a in answers):
                    raise RuntimeError(f"webhook refused: {answers[0].text!r}")

    asyncio.run(post_all())
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            rows, done = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'sent'"
                " AND delivery_status IS NOT NULL) FROM outbox"
            ).fetchone()
        if done >= rows:
            return
        time.sleep(0.2)
    raise RuntimeError("the replies were not all sent with their callback in 10 minutes")


def one_run(src: Path | None, count: int, *, bare: bool = False, webhook: bool = False) -> float:
    """Instructions per SMS of one server run (``src``: another checkout's src/; ``bare``:
    the bare responder instead of exosms; ``webhook``: the webhook's whole exchange)."""
    with tempfile.TemporaryDirectory(prefix="exosms-callgrind-") as work:
        port = free_port()
        path = [str(src)] if src is not None else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(BENCH)])}
        fake = None
        if webhook:
            fake_port = free_port()
            fake = subprocess.Popen(
                [PYTHON, "-m", "exosms", "fake-exotel", "--port", str(fake_port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            env |= exotel_env(fake_port, port)
        out = f"{work}/callgrind.out"
        command = [c.replace("{port}", str(port)) for c in (BARE if bare else EXOSMS)]
        if not bare:
            command += ["--database", f"sqlite:///{work}/bench.db"]
        server = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}.%p",
                PYTHON,
                *command,
            ],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/exotel/sms"
        hook = f"http://127.0.0.1:{port}/exotel/webhook"
        try:
            with httpx.Client(timeout=60) as http:
                deadline = time.monotonic() + 300
                while True:
                    try:
                        http.get(url)
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)

                def sms(n: int, tag: str) -> None:
                    body = "ORDER 1234" if n % 2 else "nothing matches this"
                    query = {
                        "SmsSid": f"{tag}{n}-{uuid.uuid4().hex[:8]}",
                        "From": f"90{n:08d}",
                        "To": "56070",
                        "Body": body,
                    }
                    http.head(url, params=query)
                    http.get(url, params=query)

                if webhook:
                    _webhooks(hook, "warm", 48, Path(work) / "bench.db")
                else:
                    for n in range(100):
                        sms(n, "warm")
                control("-i", "on", str(server.pid))
                if webhook:
                    _webhooks(hook, "count", count, Path(work) / "bench.db")
                else:
                    for n in range(count):
                        sms(n, "count")
                control("-i", "off", str(server.pid))
                control("-d", str(server.pid))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(120)
            if fake is not None:
                fake.terminate()
                fake.wait(30)
        total = 0
        for path in Path(work).glob("callgrind.out.*"):
            found = re.search(r"^totals:\s+(\d+)", path.read_text(errors="replace"), re.M)
            total += int(found.group(1)) if found else 0
        return total / count


def table(results: dict[str, list[float]]) -> str:
    """The medians as a Markdown table, with each one against the bare responder's."""
    runs = len(next(iter(results.values())))
    bare = statistics.median(results["bare"]) if "bare" in results else None
    lines = [f"| server | instructions per SMS (median of {runs}) | vs bare | runs |"]
    lines.append("|---|---|---|---|")
    for name, values in results.items():
        median = statistics.median(values)
        ratio = f"{median / bare:.1f}x" if bare else ""
        listed = ", ".join(f"{v:,.0f}" for v in values)
        lines.append(f"| {name} | {median:,.0f} | {ratio} | {listed} |")
    for name in [n for n in results if n.startswith("exosms-webhook")]:
        applet = statistics.median(results[name.replace("exosms-webhook", "exosms")])
        exchange = statistics.median(results[name])
        lines.append(f"\n{name}: the whole exchange {exchange / applet:.2f}x the applet's SMS")
    return "\n".join(lines)


def measure(
    runs: int, count: int, compare: str = "", bare: bool = True, webhook: bool = False
) -> dict[str, list[float]]:
    """Instructions per SMS of each version (``bare`` too; with ``webhook`` each version's
    webhook exchange too), ``runs`` times in alternation."""
    versions: list[tuple[str, Path | None]] = [("exosms", None)]
    worktree = None
    if compare:
        worktree = revisions.checkout(compare)
        versions.append((f"exosms@{compare}", worktree / "src"))
    results: dict[str, list[float]] = {"bare": []} if bare else {}
    results |= {name: [] for name, _ in versions}
    if webhook:
        results |= {name.replace("exosms", "exosms-webhook"): [] for name, _ in versions}
    try:
        for _ in range(runs):
            if bare:
                results["bare"].append(one_run(None, count, bare=True))
            for name, src in versions:
                results[name].append(one_run(src, count))
                if webhook:
                    exchange = one_run(src, count, webhook=True)
                    results[name.replace("exosms", "exosms-webhook")].append(exchange)
            done = ", ".join(f"{name} {values[-1]:,.0f}" for name, values in results.items())
            print(f"instructions per SMS: {done}", file=sys.stderr)
    finally:
        if worktree is not None:
            revisions.remove(worktree)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sms", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare", default="")
    parser.add_argument("--no-bare", action="store_true", help="exosms only")
    parser.add_argument("--webhook", action="store_true", help="the webhook's exchange too")
    args = parser.parse_args()
    results = measure(args.runs, args.sms, args.compare, not args.no_bare, args.webhook)
    print(table(results))


if __name__ == "__main__":
    main()
