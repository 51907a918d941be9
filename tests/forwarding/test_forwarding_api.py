"""What people and scripts see of forwarding: /api/forwarding, /api/events, the replay, the
inbox page and `exosms events`, with a destination that cannot be reached."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from inbox_support import API_TOKEN, inbox_env, login, send_sms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow
AUTH = {"authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("forwarding")
    nowhere = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every try fails
    destinations = [
        {
            "name": "crm",
            "kind": "webhook",
            "url": nowhere,
            "timeout_seconds": 1,
            "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        },
    ]
    (workdir / "exosms.toml").write_text(
        "[forwarding]\npoll_seconds = 0.05\nmax_attempts = 2\n"
        + "".join(
            "[[forwarding.destinations]]\n"
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in d.items())
            for d in destinations
        )
    )
    proc = ServerProcess(
        workdir,
        free_port(),
        f"sqlite:///{workdir / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router"],
        env=inbox_env(),
    ).start()
    send_sms(proc.url, "f1", "ECHO one")
    send_sms(proc.url, "f2", "ECHO two", sender="09811122233")
    deadline = time.monotonic() + 20  # two attempts each (backoff 0.25-0.5 s): then dead
    while int(str((health := crm(proc))["dead"])) < 4:
        assert time.monotonic() < deadline, health
        time.sleep(0.05)
    yield proc
    proc.stop()


def crm(proc: ServerProcess) -> dict[str, object]:
    answer = httpx.get(f"{proc.url}/api/forwarding", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    destination: dict[str, object] = answer.json()["destinations"][0]
    return destination


def test_dead_letters_are_counted_with_their_last_error_and_listed(server: ServerProcess) -> None:
    health = crm(server)
    assert (health["name"], health["kind"], health["pending"], health["dead"]) == (
        "crm",
        "webhook",
        0,
        4,
    )
    assert "unreachable" in str(health["last_error"])
    events = httpx.get(f"{server.url}/api/events?limit=3", headers=AUTH).json()
    assert [e["type"] for e in events["events"]] == ["sms.answered", "sms.received", "sms.answered"]
    assert events["events"][0]["forwards"][0]["state"] == "dead"
    assert events["next"] is not None and "before=" in events["next"]
    only = httpx.get(f"{server.url}/api/events?type=sms.received", headers=AUTH).json()
    assert {e["type"] for e in only["events"]} == {"sms.received"}
    assert httpx.get(f"{server.url}/api/events?type=nope", headers=AUTH).status_code == 400


def test_replay_refuses_what_makes_no_sense_and_queues_the_period_again(
    server: ServerProcess,
) -> None:
    url = f"{server.url}/api/events/replay"
    assert httpx.post(url, headers=AUTH, content="{}").status_code == 415
    bad = [
        {},
        {"since": "yesterday"},
        {"since": "2026-12-01T09:00:00"},  # no offset
        {"since": True},
        {"since": time.time() - 60, "destinations": ["nowhere"]},
        {"since": time.time() - 60, "types": ["sms.sent"]},
        [1, 2],
    ]
    for body in bad:
        answer = httpx.post(url, headers=AUTH, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]
    queued = httpx.post(
        url, headers=AUTH, json={"since": time.time() - 600, "types": ["sms.answered"]}
    )
    assert queued.status_code == 200, queued.text
    assert queued.json() == {"queued": 2, "destinations": ["crm"]}
    assert httpx.post(url, json={"since": time.time() - 60}).status_code == 401  # no token


def test_the_inbox_page_shows_each_destination(server: ServerProcess) -> None:
    client = login(server.url)
    page = client.get("/inbox/forwarding")
    assert page.status_code == 200
    assert 'id="destinations"' in page.text and ">crm<" in page.text
    assert "unreachable" in page.text and "sms.answered" in page.text


def test_the_events_command_says_the_same(server: ServerProcess) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "exosms", "events", *args, "--database", server.database_url],
            cwd=server.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    status = run("status", "--json")
    assert status.returncode == 0, status.stderr
    found = json.loads(status.stdout.splitlines()[0])
    assert found["destination"] == "crm" and found["dead"] >= 2
    listed = run("list", "--limit", "2")
    assert listed.returncode == 0 and "sms.answered" in listed.stdout
    wrong = run("replay", "--since", "1h", "--destination", "nope")
    assert wrong.returncode == 2 and "no destination 'nope'" in wrong.stderr
    ok = run("replay", "--since", "1h", "--type", "sms.received")
    assert ok.returncode == 0 and "queued 2 deliveries" in ok.stdout
