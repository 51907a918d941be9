"""The exosms benchmark: the request-to-reply hot path against the fastest Python responder.

Usage:  python3 bench/run.py [--duration 10] [--repeats 3] [--connections 1,32] [--quick]
                             [--only exosms-sqlite,bare-asgi] [--no-postgres] [--compare REV]

``--compare REV`` also runs exosms as it was at git revision REV (checked out into a temporary
worktree, run with this venv), beside today's, in the same run: what a change costs.

Starts each server in turn on 127.0.0.1, drives it with wrk and bench/exotel.lua, then with
bench/exotel_load.py (Exotel's HEAD then GET per SMS on one connection, which wrk cannot
send), then the webhook path beside the applet path on one SQLite server (bench/webhook.py:
webhook, send to the fake Exotel, status callback), then counts the instructions per SMS of
the bare responder and of exosms on SQLite under callgrind, the applet's SMS and the webhook's
whole exchange (bench/callgrind.py, when valgrind is there: the figure that does not move
with the neighbours), and writes
bench/results/<date>.json and .md. Needs wrk (Debian package `wrk`: it is installed when
missing and this runs as root) and, for the PostgreSQL run, the server at
$EXOSMS_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import callgrind
import revisions
import webhook

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
TICKS = os.sysconf("SC_CLK_TCK")
ADMIN_URL = os.environ.get("EXOSMS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (Debian package) ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is needed: install the Debian package `wrk` (apt-get install wrk)")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


@dataclass
class Target:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    get_only: bool = False
    health: str = "/exotel/sms"


@dataclass
class Measurement:
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int


def _ms(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def run_wrk(
    wrk: str,
    url: str,
    connections: int,
    duration: int,
    env: dict[str, str],
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    """wrk's figures; ``cpus``: the cores wrk may run on (all by default)."""
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(BENCH / "exotel.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=duration + 60,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "requests": total,
        "p50": _ms(lat.get("50", "0ms")),
        "p99": _ms(lat.get("99", "0ms")),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


class Server:
    def __init__(self, target: Target, port: int, workdir: Path) -> None:
        self.target = target
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        log = (self.workdir / f"{self.target.name}.log").open("wb")
        command = [c.replace("{port}", str(self.port)) for c in self.target.command]
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env={**os.environ, **self.target.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}{self.target.health}", timeout=1
                )
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.target.name} did not start; see {log.name}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def measure(
    target: Target, wrk: str, connections: list[int], duration: int, repeats: int, workdir: Path
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    env = {"GET_ONLY": "1" if target.get_only else "0"}
    with Server(target, free_port(), workdir) as server:
        url = f"http://127.0.0.1:{server.port}"
        run_wrk(wrk, url, 8, 2, env)  # warm up
        assert server.process is not None
        for conns in connections:
            runs = []
            for _ in range(repeats):
                before = cpu_seconds(server.process.pid)
                result = run_wrk(wrk, url, conns, duration, env)
                used = cpu_seconds(server.process.pid) - before
                result["cpu_us"] = used / max(1, result["requests"]) * 1e6
                runs.append(result)
                print(
                    f"  {target.name:<16} c={conns:<3} {result['rps']:9.0f} req/s  "
                    f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  "
                    f"cpu {result['cpu_us']:6.1f} us/req  errors {result['errors']}",
                    file=sys.stderr,
                )
            results[str(conns)] = runs
        if not target.get_only:  # Exotel's own shape: HEAD then GET per SMS, per connection
            shaped = {}
            for conns in connections:
                before = cpu_seconds(server.process.pid)
                result = exotel_shaped(url, conns, duration)
                used = cpu_seconds(server.process.pid) - before
                result["cpu_us_per_sms"] = used / max(1, result["sms"]) * 1e6
                shaped[str(conns)] = result
                print(
                    f"  {target.name:<16} c={conns:<3} {result['sms_per_s']:9.0f} SMS/s "
                    f"(HEAD+GET)  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms"
                    f"  cpu {result['cpu_us_per_sms']:6.1f} us/SMS  errors {result['errors']}",
                    file=sys.stderr,
                )
            results["exotel_shaped"] = shaped
    return results


def exotel_shaped(url: str, connections: int, duration: int) -> dict[str, Any]:
    """bench/exotel_load.py's figures (HEAD then GET per SMS on each connection)."""
    command = [PYTHON, str(BENCH / "exotel_load.py"), url]
    out = subprocess.run(
        [*command, "--connections", str(connections), "--duration", str(duration)],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    return dict(json.loads(out))


def pg_database() -> str | None:
    try:
        import asyncpg
    except ImportError:
        return None
    name = f"exosms_bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except Exception as error:
        print(f"no PostgreSQL ({error}): skipping exosms-postgres", file=sys.stderr)
        return None
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg(url: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def summarise(data: dict[str, Any], connections: list[int]) -> str:
    lines = [
        "| server | conns | req/s (median, min-max) | SMS/s | p50 ms | p99 ms | CPU us/req | vs ceiling |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ceiling = data.get("bare-asgi", {})
    for name, per_conn in data.items():
        for conns in connections:
            runs = per_conn.get(str(conns))
            if not runs:
                continue
            rps = [r["rps"] for r in runs]
            median = statistics.median(rps)
            base = ceiling.get(str(conns))
            ratio = f"{median / statistics.median([r['rps'] for r in base]):.2f}" if base else ""
            lines.append(
                f"| {name} | {conns} | {median:,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | "
                f"{median / 2:,.0f} | {statistics.median(r['p50'] for r in runs):.2f} | "
                f"{statistics.median(r['p99'] for r in runs):.2f} | "
                f"{statistics.median(r['cpu_us'] for r in runs):.0f} | {ratio} |"
            )
    lines += [
        "",
        "Exotel's shape (bench/exotel_load.py: HEAD then GET per SMS on each connection):",
        "",
        "| server | conns | SMS/s | vs ceiling | p50 ms per SMS | p99 ms per SMS | CPU us/SMS |",
        "|---|---|---|---|---|---|---|",
    ]
    top = ceiling.get("exotel_shaped", {})
    for name, per_conn in data.items():
        for conns in connections:
            shaped = per_conn.get("exotel_shaped", {}).get(str(conns))
            if not shaped:
                continue
            base = top.get(str(conns))
            ratio = f"{shaped['sms_per_s'] / base['sms_per_s']:.2f}" if base else ""
            lines.append(
                f"| {name} | {conns} | {shaped['sms_per_s']:,.0f} | {ratio} | "
                f"{shaped['p50_ms']:.2f} | {shaped['p99_ms']:.2f} | "
                f"{shaped['cpu_us_per_sms']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", default="1,32")
    parser.add_argument("--only", default="")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 s, one repeat: a smoke run")
    parser.add_argument("--compare", default="", help="also run exosms at this git revision")
    parser.add_argument(
        "--no-webhook", action="store_true", help="skip the webhook path (bench/webhook.py)"
    )
    parser.add_argument(
        "--no-callgrind",
        action="store_true",
        help="skip the instructions per SMS (bench/callgrind.py; needs valgrind)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeats = 3, 1
    connections = [int(c) for c in args.connections.split(",")]
    wrk = ensure_wrk()
    uvicorn = [
        PYTHON,
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        "--no-server-header",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--app-dir",
        str(BENCH),
    ]
    exosms = [PYTHON, "-m", "exosms", "serve", "--port", "{port}", "--app", "bench_apps:router"]
    bench_env = {"PYTHONPATH": str(BENCH)}  # default settings: durable, logging at info
    versions = [("", bench_env)]
    worktree = None
    if args.compare:
        worktree = revisions.checkout(args.compare)
        # That revision's package first on the path: it shadows this checkout's editable one.
        versions.append(
            (f"@{args.compare}", {"PYTHONPATH": f"{worktree / 'src'}{os.pathsep}{BENCH}"})
        )
    pg_urls: list[str] = []
    targets = [Target("bare-asgi", [*uvicorn, "bench_apps:bare"])]
    for suffix, env in versions:
        db = f"sqlite:///bench{suffix.replace('@', '-')}.db"
        targets.append(Target(f"exosms-sqlite{suffix}", [*exosms, "--database", db], env))
    # The same replies from a rules file (no Python: one write per new SMS), this checkout.
    rules_env = bench_env | {"EXOSMS_RULES_FILE": str(BENCH / "bench_rules.toml")}
    rules_db = "sqlite:///bench-rules.db"
    targets.append(Target("exosms-sqlite-rules", [*exosms[:-2], "--database", rules_db], rules_env))
    for suffix, env in [] if args.no_postgres else versions:
        pg_url = pg_database()
        if pg_url:
            pg_urls.append(pg_url)
            targets.append(Target(f"exosms-postgres{suffix}", [*exosms, "--database", pg_url], env))
    pg_url = None if args.no_postgres else pg_database()
    if pg_url:  # the rules file's replies on PostgreSQL, this checkout
        pg_urls.append(pg_url)
        command = [*exosms[:-2], "--database", pg_url]
        targets.append(Target("exosms-postgres-rules", command, rules_env))
    targets.append(
        Target("fastapi-empty", [*uvicorn, "--factory", "bench_apps:fastapi_app"], get_only=True)
    )
    if args.only:
        # A name brings its twin at --compare REV with it: `--only exosms-sqlite --compare
        # REV` runs both.
        wanted = set(args.only.split(","))
        targets = [t for t in targets if t.name in wanted or t.name.split("@")[0] in wanted]
    data: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="exosms-bench-") as tmp:
            for target in targets:
                print(f"{target.name} ...", file=sys.stderr)
                try:
                    data[target.name] = measure(
                        target, wrk, connections, args.duration, args.repeats, Path(tmp)
                    )
                except RuntimeError as error:  # one server that cannot start: the rest run
                    print(f"  skipped: {error}", file=sys.stderr)
        if not args.no_webhook and (not args.only or "webhook" in args.only.split(",")):
            print("webhook (beside the applet, one SQLite server) ...", file=sys.stderr)
            with tempfile.TemporaryDirectory(prefix="exosms-webhook-") as tmp:
                data["webhook"] = webhook.measure(32, args.duration, Path(tmp))
        if not args.no_callgrind and not args.only:
            if shutil.which("valgrind"):
                print(
                    "instructions per SMS (callgrind, bare and exosms-sqlite) ...", file=sys.stderr
                )
                data["instructions"] = callgrind.measure(
                    args.repeats, 200, args.compare, webhook=not args.no_webhook
                )
            else:
                print(
                    "  no valgrind (apt-get install valgrind): no instructions per SMS",
                    file=sys.stderr,
                )
    finally:
        for pg_url in pg_urls:
            drop_pg(pg_url)
        if worktree is not None:
            revisions.remove(worktree)
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M")
    machine = (
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    exchange = data.pop("webhook", None)
    instructions = data.pop("instructions", None)
    table = summarise(data, connections)
    if instructions is not None:
        data["instructions"] = instructions
        table += (
            "\n\nInstructions per SMS (bench/callgrind.py: HEAD then GET, 200 SMS, every thread;"
            " exosms-webhook: the webhook's whole exchange, eight at a time; the stable figure"
            " on a loaded machine):\n\n" + callgrind.table(instructions)
        )
    if exchange is not None:
        data["webhook"] = exchange
        table += (
            "\n\nThe webhook path beside the applet path (bench/webhook.py, 32 connections):"
            "\n\n" + webhook.summarise(exchange)
        )
    report = {
        "date": stamp,
        "machine": machine,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "results": data,
    }
    (BENCH / "results" / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    (BENCH / "results" / f"{stamp}.md").write_text(
        f"# exosms benchmark {stamp}\n\n{machine}\n\n{args.duration} s per run, "
        f"{args.repeats} runs each; SMS/s = req/s / 2.\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
