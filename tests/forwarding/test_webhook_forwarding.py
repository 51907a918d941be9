"""Forwarding to a real HTTP receiver over sockets: signed, at least once, in order per
customer, through a receiver that is down, answers 500, or whose exosms is SIGKILLed."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from receiver import Receiver, per_sender
from servers import ServerProcess, free_port, server_factory

pytestmark = pytest.mark.slow

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
SENDERS = ("9052161119", "9812345678", "9000000001")
BATCH = 200  # [forwarding] batch: at most one leased batch is resent after a SIGKILL


def config(port: int, secrets: tuple[str, ...] = (SECRET,), **extra: object) -> str:
    listed = ", ".join(f'"{s}"' for s in secrets)
    more = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in extra.items())
    return (
        "[forwarding]\npoll_seconds = 0.05\nlease_seconds = 3\n"
        "[[forwarding.destinations]]\n"
        f'name = "crm"\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\n'
        f"secrets = [{listed}]\ntimeout_seconds = 2\n{more}"
    )


def send(proc: ServerProcess, sender: str, body: str) -> str:
    sid = uuid.uuid4().hex
    params = {"SmsSid": sid, "From": sender, "To": "56070", "Body": body}
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{proc.url}/exotel/sms", params=params).status_code == 200
    return sid


def expected_order(sids: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        "+91" + sender: [f"{sid}:{step}" for sid in order for step in ("received", "answered")]
        for sender, order in sids.items()
    }


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    with server_factory(tmp_path) as make:
        yield make


def test_a_receiver_down_for_a_while_gets_everything_in_order_once_back(
    make_server: Callable[..., ServerProcess],
) -> None:
    port = free_port()
    proc = make_server(config(port))
    sids: dict[str, list[str]] = {s: [] for s in SENDERS}
    for n in range(12):  # the receiver is not there yet: connections refused
        sender = SENDERS[n % 3]
        sids[sender].append(send(proc, sender, f"ECHO order {n}"))
    receiver = Receiver(port, SECRET).start()
    try:
        events = receiver.wait_for(24)
        assert receiver.refused == 0
        assert per_sender(events) == expected_order(sids)
        answered = next(e for e in events if e.type == "sms.answered")
        message = answered.payload["data"]["message"]
        assert (message["reply"], message["rule"]) == (message["body"][5:], "echo")
        assert answered.payload["schema"] == "exosms.event/1"
    finally:
        receiver.stop()


def test_500s_then_2xx_with_retry_after_and_the_status_command(
    make_server: Callable[..., ServerProcess],
) -> None:
    port = free_port()
    receiver = Receiver(port, SECRET, fail_next=3, retry_after="1").start()
    try:
        proc = make_server(config(port))
        sid = send(proc, SENDERS[0], "ECHO hello")
        started = time.monotonic()
        events = receiver.wait_for(2)
        assert time.monotonic() - started >= 1.0  # Retry-After: 1 was waited for
        assert [e.id for e in events] == [f"{sid}:received", f"{sid}:answered"]
        assert receiver.requests >= 5
    finally:
        receiver.stop()


def test_two_secrets_while_rotating_each_receiver_verifies_and_a_forgery_is_refused(
    make_server: Callable[..., ServerProcess],
) -> None:
    old_port, new_port, wrong_port = free_port(), free_port(), free_port()
    old = Receiver(old_port, OLD_SECRET).start()
    new = Receiver(new_port, SECRET).start()
    wrong = Receiver(wrong_port, "whsec_" + "A" * 32).start()
    try:
        hooks = "".join(
            "[[forwarding.destinations]]\n"
            f'name = "{name}"\nkind = "webhook"\nurl = "http://127.0.0.1:{p}/hook"\n'
            f'secrets = ["{SECRET}", "{OLD_SECRET}"]\n'
            for name, p in (("old", old_port), ("new", new_port), ("wrong", wrong_port))
        )
        proc = make_server("[forwarding]\npoll_seconds = 0.05\nmax_attempts = 2\n" + hooks)
        send(proc, SENDERS[0], "ECHO rotate")
        assert len(old.wait_for(2)) >= 2 and len(new.wait_for(2)) >= 2
        with wrong.changed:
            assert wrong.changed.wait_for(lambda: wrong.refused >= 2, 10)
        assert wrong.accepted == []
    finally:
        for receiver in (old, new, wrong):
            receiver.stop()


def test_exosms_killed_mid_stream_loses_nothing_and_keeps_each_customers_order(
    tmp_path: Path,
) -> None:
    port = free_port()
    receiver = Receiver(port, SECRET).start()
    (tmp_path / "exosms.toml").write_text(config(port))
    database = f"sqlite:///{tmp_path / 'exosms.db'}"
    sids: dict[str, list[str]] = {s: [] for s in SENDERS}
    proc = ServerProcess(tmp_path, free_port(), database, args=["--app", "exosms_test_apps:router"])
    proc.start()
    try:
        stop = threading.Event()

        def traffic(server: ServerProcess) -> None:
            n = 0
            while not stop.is_set():
                sender = SENDERS[n % 3]
                try:
                    sid = send(server, sender, f"ECHO k{n}")
                except (httpx.HTTPError, AssertionError):
                    return  # the server was killed mid-request: that SMS was not answered
                sids[sender].append(sid)
                n += 1

        worker = threading.Thread(target=traffic, args=(proc,))
        worker.start()
        with receiver.changed:  # kill it while events are flowing
            assert receiver.changed.wait_for(lambda: len(receiver.accepted) >= 20, 20)
        proc.kill()
        stop.set()
        worker.join(15)
        restarted = ServerProcess(
            tmp_path, proc.port, database, args=["--app", "exosms_test_apps:router"]
        ).start()
        try:
            for n in range(6):
                sender = SENDERS[n % 3]
                sids[sender].append(send(restarted, sender, f"ECHO after {n}"))
            wanted = {event for order in expected_order(sids).values() for event in order}
            events = receiver.wait_for_ids(wanted, timeout=40)
            order = per_sender(events)
            for sender, expected in expected_order(sids).items():
                got = order.get(sender, [])
                # Every answered SMS, in order; a message answered as the process died may
                # add its events (they are stored), never reorder or lose one.
                assert [e for e in got if e in expected] == expected, (sender, got)
            ids = [e.id for e in events]
            assert len(ids) - len(set(ids)) <= BATCH, "more resent than one leased batch"
        finally:
            restarted.stop()
    finally:
        proc.stop()
        receiver.stop()


def test_three_processes_on_postgresql_deliver_each_event_once_in_each_customers_order(
    tmp_path: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pg import create_database, drop_database

    database = create_database()
    port = free_port()
    receiver = Receiver(port, SECRET).start()
    (tmp_path / "exosms.toml").write_text(config(port))
    servers = [
        ServerProcess(tmp_path, free_port(), database, args=["--app", "exosms_test_apps:router"])
        for _ in range(3)
    ]
    try:
        for server in servers:
            server.start()
        sids: dict[str, list[str]] = {s: [] for s in SENDERS}

        def customer(index: int) -> None:  # each customer writes to all three, in turn
            sender = SENDERS[index]
            for n in range(20):
                sids[sender].append(send(servers[(index + n) % 3], sender, f"ECHO p{n}"))

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(customer, range(3)))
        events = receiver.wait_for(120, timeout=60)
        assert per_sender(events) == expected_order(sids)
        ids = [event.id for event in events]
        assert len(ids) == len(set(ids)) == 120  # no crash, so no event twice
    finally:
        for server in servers:
            server.stop()
        receiver.stop()
        drop_database(database)


def test_exosms_forward_delivers_beside_a_server_that_does_not(tmp_path: Path) -> None:
    import subprocess
    import sys

    port = free_port()
    receiver = Receiver(port, SECRET).start()
    (tmp_path / "exosms.toml").write_text(
        config(port).replace("[forwarding]\n", '[forwarding]\nrun = "external"\n')
    )
    database = f"sqlite:///{tmp_path / 'exosms.db'}"
    proc = ServerProcess(tmp_path, free_port(), database, args=["--app", "exosms_test_apps:router"])
    proc.start()
    forwarder: subprocess.Popen[bytes] | None = None
    try:
        first = send(proc, SENDERS[0], "ECHO apart")
        with receiver.changed:  # the server alone delivers nothing
            assert not receiver.changed.wait_for(lambda: receiver.accepted, 1.0)
        forwarder = subprocess.Popen(
            [sys.executable, "-m", "exosms", "forward", "--database", database], cwd=tmp_path
        )
        second = send(proc, SENDERS[0], "ECHO apart again")
        events = receiver.wait_for(4)
        assert [e.id for e in events] == [
            f"{first}:received",
            f"{first}:answered",
            f"{second}:received",
            f"{second}:answered",
        ]
        forwarder.terminate()
        assert forwarder.wait(15) == 0  # SIGTERM: a clean stop
    finally:
        if forwarder is not None and forwarder.poll() is None:
            forwarder.kill()
        proc.stop()
        receiver.stop()


def _forward_children(server: ServerProcess) -> list[int]:
    import subprocess

    assert server.process is not None
    found = subprocess.run(
        ["pgrep", "-P", str(server.process.pid), "-f", "exosms forward"],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in found.stdout.split()]


def _wait(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # a process appearing or going: nothing to wait on but the OS
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_forwarding_process_serve_starts_is_restarted_and_dies_with_it(
    tmp_path: Path,
) -> None:
    import os
    import signal

    port = free_port()
    receiver = Receiver(port, SECRET).start()
    (tmp_path / "exosms.toml").write_text(config(port))
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router"],
    ).start()
    try:
        _wait(lambda: len(_forward_children(proc)) == 1)
        first = _forward_children(proc)[0]
        os.kill(first, signal.SIGKILL)  # it dies: serve starts another
        _wait(lambda: _forward_children(proc) not in ([], [first]))
        sid = send(proc, SENDERS[0], "ECHO still forwarded")
        assert [e.id for e in receiver.wait_for(2)] == [f"{sid}:received", f"{sid}:answered"]
        second = _forward_children(proc)[0]
        proc.kill()  # SIGKILL: serve cannot stop it; it notices and stops itself
        _wait(lambda: not Path(f"/proc/{second}").exists() or _zombie(second))
    finally:
        proc.stop()
        receiver.stop()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
