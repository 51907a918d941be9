"""Rules in a real server: sessions across restarts, hot reload under load."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from servers import ServerProcess, free_port

RULES_V1 = """
[[rules]]
keyword = "HOURS"
reply = "Open 9 to 9"

[[rules]]
keyword = "MENU"
reply = "Reply 1 for status"
set_state = "menu"

[[rules]]
regex = '^1$'
state = "menu"
reply = "Status: all good"
set_state = ""
"""


def wait_until(check: Callable[[], bool], seconds: float = 15) -> None:
    """Poll ``check`` (an event the server makes visible) until it holds."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def send(proc: ServerProcess, body: str, sender: str = "9052161119") -> httpx.Response:
    params = {"SmsSid": uuid.uuid4().hex, "From": sender, "To": "56070", "Body": body}
    with httpx.Client(timeout=10) as client:
        client.head(f"{proc.url}/exotel/sms", params=params)
        return client.get(f"{proc.url}/exotel/sms", params=params)


def start(tmp_path: Path, rules: str) -> ServerProcess:
    (tmp_path / "rules.toml").write_text(rules)
    (tmp_path / "exosms.toml").write_text('rules_file = "rules.toml"\nrules_reload_seconds = 0.1\n')
    return ServerProcess(tmp_path, free_port(), f"sqlite:///{tmp_path / 'exosms.db'}").start()


def test_a_conversation_survives_a_restart(tmp_path: Path) -> None:
    proc = start(tmp_path, RULES_V1)
    try:
        assert send(proc, "MENU").text == "Reply 1 for status"
    finally:
        proc.stop()
    proc.start()
    try:
        assert send(proc, "1").text == "Status: all good"
        assert send(proc, "1").text == ""  # the flow ended: the state was cleared
    finally:
        proc.stop()


def test_hot_reload_under_load_drops_nothing(tmp_path: Path) -> None:
    proc = start(tmp_path, RULES_V1)
    # (status, text, when the request was sent, when its answer came): four clients at once,
    # so answers arrive out of the order their requests were sent in.
    answers: list[tuple[int, str, float, float]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                params = {"SmsSid": uuid.uuid4().hex, "From": "9052161119", "Body": "HOURS"}
                sent = time.monotonic()
                try:
                    answer = http.get(f"{proc.url}/exotel/sms", params=params)
                    answers.append((answer.status_code, answer.text, sent, time.monotonic()))
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    workers = [threading.Thread(target=client) for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        wait_until(lambda: len(answers) >= 50)  # under load before the change
        (tmp_path / "rules.toml").write_text(RULES_V1.replace("Open 9 to 9", "Open 10 to 8"))
        wait_until(lambda: bool(answers) and answers[-1][1] == "Open 10 to 8")
        switched = len(answers)
        wait_until(lambda: len(answers) >= switched + 50)  # and after it
        # An invalid file is refused; the rules in force stay.
        (tmp_path / "rules.toml").write_text(
            RULES_V1 + '\n[[rules]]\nkeyword = "X"\nreplay = "y"\n'
        )
        wait_until(lambda: "the previous rules stay in force" in proc.log())
        refused = len(answers)
        wait_until(lambda: len(answers) >= refused + 50)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        proc.stop()
    assert failures == []
    assert {status for status, *_ in answers} == {200}
    texts = [text for _, text, _, _ in answers]
    assert texts[0] == "Open 9 to 9"
    assert texts[-1] == "Open 10 to 8"
    # Once the new rules answered, no request sent after that is answered by the old ones
    # (one sent before may still be: it was routed before the switch).
    switched_at = min(done for _, text, _, done in answers if text == "Open 10 to 8")
    later = {text for _, text, sent, _ in answers if sent > switched_at}
    assert later == {"Open 10 to 8"}, "answers went back to the old rules"
    assert len(texts) > 50
    log = proc.log()
    assert "rules reloaded from" in log
    assert "rules not reloaded: " in log and "unknown key 'replay'" in log


def test_serve_refuses_an_invalid_rules_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "rules.toml").write_text('[[rules]]\nkeyword = "A"\nreply = "{nope}"\n')
    (tmp_path / "exosms.toml").write_text('rules_file = "rules.toml"\n')
    done = subprocess.run(
        [sys.executable, "-m", "exosms", "serve"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "rules.toml:1: rule 'A': unknown variable {nope} in reply" in done.stderr
