"""Contacts over real HTTP and the CLI: a CSV imported (its bad lines reported), a name
edited in a conversation, shown instead of the bare number and found by search."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from inbox_support import csrf_of, inbox_server, login, send_sms

pytestmark = pytest.mark.slow


def test_names_imported_edited_shown_and_found(tmp_path: Path) -> None:
    proc = inbox_server(tmp_path)
    try:
        send_sms(proc.url, "k1", "Is the blue kurta in stock?", sender="09811100501")
        send_sms(proc.url, "k2", "Delivery today?", sender="09811100502")
        (tmp_path / "contacts.csv").write_bytes(
            "\ufeffName,Mobile\nAnita Rao,09811100501\nनीरज,+919811100502\n"
            "Nobody,hello\nonly-one-cell\n".encode()
        )

        def cli(*args: str) -> str:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "exosms",
                    "contacts",
                    *args,
                    "--database",
                    proc.database_url,
                ],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        report = cli("import", "contacts.csv")
        assert "contacts.csv: 2 added, 0 updated, 0 unchanged, 2 skipped" in report
        assert "line 4: 'hello' is not a phone number" in report
        assert "line 5: expected a number and a name" in report
        assert cli("import", "contacts.csv").startswith(
            "contacts.csv: 0 added, 0 updated, 2 unchanged"
        )
        assert "+919811100501  Anita Rao" in cli("list")

        client = login(proc.url)
        home = client.get("/inbox").text
        assert 'Anita Rao <span class="number">+919811100501</span>' in home
        assert 'नीरज <span class="number">+919811100502</span>' in home
        found = client.get("/inbox", params={"number": "anita"}).text
        assert 'data-sender="+919811100501"' in found and "+919811100502" not in found
        thread = client.get("/inbox/c/+919811100502").text
        token = csrf_of(thread)
        renamed = client.post(
            "/inbox/contact/+919811100502", data={"csrf": token, "name": "  Neeraj \t Kumar "}
        )
        assert renamed.status_code == 303
        assert "<h1>Neeraj Kumar <span" in client.get("/inbox/c/+919811100502").text
        too_long = client.post(
            "/inbox/contact/+919811100502", data={"csrf": token, "name": "x" * 101}
        )
        assert too_long.status_code == 400 and "at most 100 characters" in too_long.text
        search = client.get("/inbox/search", params={"q": "kurta"}).text
        assert 'Anita Rao <span class="number">+919811100501</span>' in search
        forgot = client.post("/inbox/contact/+919811100501", data={"csrf": token, "name": ""})
        assert forgot.status_code == 303
        assert "Anita Rao" not in client.get("/inbox").text
    finally:
        proc.stop()
