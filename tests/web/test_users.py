"""Several people in the inbox over real HTTP and the CLI: named users with a role, an
agent kept out of the admin pages, conversations assigned, closed and opened again by a new
message, a removed user logged out at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from inbox_support import csrf_of, inbox_server, login, login_form, send_sms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow

AGENT_PASSWORD = "agent password 123"


def users_cli(proc: ServerProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exosms", "users", *args, "--database", proc.database_url],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=proc.workdir,
        timeout=60,
    )


def test_an_agent_works_conversations_and_is_kept_out_of_admin_pages(tmp_path: Path) -> None:
    proc = inbox_server(tmp_path, "--app", "exosms_test_apps:router")
    try:
        added = users_cli(proc, "add", "Priya", "--password-stdin", stdin=AGENT_PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip() == (
            "priya added as agent: they log in to the inbox with their name and password"
        )
        assert (
            "already a user 'priya'"
            in users_cli(
                proc, "add", "priya", "--password-stdin", stdin=AGENT_PASSWORD + "\n"
            ).stderr
        )
        bad = users_cli(proc, "add", "Priya Sharma", "--password-stdin", stdin="x" * 12 + "\n")
        assert bad.returncode == 2 and "is not a user name" in bad.stderr
        short = users_cli(proc, "add", "ravi", "--password-stdin", stdin="short\n")
        assert short.returncode == 1 and "at least 10 characters" in short.stderr
        assert users_cli(proc, "list").stdout.splitlines()[1].startswith("priya  agent  since ")

        send_sms(proc.url, "u1", "Where is my parcel?", sender="09811100099")
        agent = login(proc.url, AGENT_PASSWORD, name="priya")
        home = agent.get("/inbox").text
        assert 'id="who-am-i">priya · agent<' in home
        assert 'href="/inbox/users"' not in home and 'href="/inbox/dlt"' not in home
        for path in ("/inbox/dlt", "/inbox/optouts", "/inbox/users"):
            refused = agent.get(path)
            assert refused.status_code == 403, path
            assert "Only an admin can open this page" in refused.text
        token = csrf_of(home)
        for path, form in (
            ("/inbox/optouts/add", {"number": "9811100099"}),
            (
                "/inbox/users",
                {"action": "add", "name": "x1", "role": "admin", "password": "p" * 12},
            ),
        ):
            assert agent.post(path, data={"csrf": token, **form}).status_code == 403, path
        # The API: reading with a session, as the pages do; changing anything needs the
        # API token, which an agent's login is not.
        assert agent.get("/api/messages").status_code == 200
        replay = agent.post("/api/events/replay", json={"since": "2026-01-01T00:00:00+00:00"})
        assert replay.status_code == 401

        # Assign to oneself, close; a new message from the customer opens it again.
        number = "+919811100099"
        assert (
            agent.post(f"/inbox/assign/{number}", data={"csrf": token, "user": "priya"}).status_code
            == 303
        )
        mine = agent.get("/inbox", params={"view": "mine"}).text
        assert (
            f'data-sender="{number}"' in mine
            and '<span class="tag" title="assigned to">priya</span>' in mine
        )
        assert (
            agent.post(
                f"/inbox/state/{number}", data={"csrf": token, "action": "close"}
            ).status_code
            == 303
        )
        assert f'data-sender="{number}"' in agent.get("/inbox", params={"view": "closed"}).text
        assert f'data-sender="{number}"' not in agent.get("/inbox", params={"view": "open"}).text
        send_sms(proc.url, "u2", "Hello? Still waiting", sender="09811100099")
        assert f'data-sender="{number}"' in agent.get("/inbox", params={"view": "open"}).text
        assert (
            agent.post(
                f"/inbox/assign/{number}", data={"csrf": token, "user": "nobody1"}
            ).status_code
            == 400
        )
        assert (
            agent.post(f"/inbox/state/{number}", data={"csrf": token, "action": "x"}).status_code
            == 400
        )
        assert (
            agent.post("/inbox/assign/+919000000000", data={"csrf": token, "user": ""}).status_code
            == 404
        )

        # The admin adds and removes a user from the page; removal logs them out at once.
        admin = login(proc.url)
        admin_token = csrf_of(admin.get("/inbox/users").text)
        made = admin.post(
            "/inbox/users",
            data={
                "csrf": admin_token,
                "action": "add",
                "name": "sunil",
                "role": "agent",
                "password": "sunil password 1",
            },
        )
        assert "sunil added as agent" in made.text and '<tr data-user="sunil">' in made.text
        weak = admin.post(
            "/inbox/users",
            data={
                "csrf": admin_token,
                "action": "add",
                "name": "anu",
                "role": "agent",
                "password": "short",
            },
        )
        assert weak.status_code == 400 and "at least 10 characters" in weak.text
        sunil = login(proc.url, "sunil password 1", name="sunil")
        assert sunil.get("/inbox").status_code == 200
        gone = admin.post(
            "/inbox/users", data={"csrf": admin_token, "action": "remove", "name": "sunil"}
        )
        assert "sunil removed: logged out everywhere" in gone.text
        assert sunil.get("/inbox").status_code == 303  # back to the login page

        wrong = httpx.Client(base_url=proc.url)
        csrf = login_form(wrong)
        answer = wrong.post(
            "/inbox/login", data={"csrf": csrf, "name": "sunil", "password": "sunil password 1"}
        )
        assert answer.status_code == 401 and "Wrong name or password." in answer.text
        assert (
            users_cli(proc, "remove", "priya").stdout.strip()
            == "priya removed: logged out everywhere"
        )
        assert agent.get("/inbox").status_code == 303
    finally:
        proc.stop()


def test_a_new_admin_password_applies_without_a_restart(tmp_path: Path) -> None:
    def password(new: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "exosms", "password", "--password-stdin"],
            input=new + "\n",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    password("the first password")
    proc = ServerProcess(
        tmp_path, free_port(), f"sqlite:///{tmp_path / 'exosms.db'}", args=[]
    ).start()  # the password from exosms.toml in its folder
    try:
        before = login(proc.url, "the first password")
        assert before.get("/inbox").status_code == 200
        password("the second password")
        deadline = time.monotonic() + 15  # the server looks at the file every second
        while True:
            client = httpx.Client(base_url=proc.url)
            csrf = login_form(client)
            answer = client.post(
                "/inbox/login", data={"csrf": csrf, "password": "the second password"}
            )
            if answer.status_code == 303:
                break
            assert time.monotonic() < deadline, answer.text[:200]
            time.sleep(0.2)
        assert before.get("/inbox").status_code == 303  # signed out: log in again
        old = httpx.Client(base_url=proc.url)
        stale = old.post(
            "/inbox/login", data={"csrf": login_form(old), "password": "the first password"}
        )
        assert stale.status_code == 401
        assert "inbox password changed in exosms.toml" in proc.log()
    finally:
        proc.stop()
