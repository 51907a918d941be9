"""`exosms doctor` for real: a fresh folder (every check says what to fix), then a set-up
made right against the fake Exotel (all OK), then wrong Exotel credentials named."""

from __future__ import annotations

from pathlib import Path

import pytest
from commands import exosms
from fake_exotel import fake_exotel

pytestmark = pytest.mark.slow


def test_doctor_names_each_fix_then_says_all_ok(tmp_path: Path) -> None:
    fresh = exosms("doctor", cwd=tmp_path)
    assert fresh.returncode == 1
    lines = fresh.stdout.splitlines()
    assert lines[0].startswith("FIX  database: no database at exosms.db: run exosms db upgrade")
    assert any(line.startswith("FIX  token: no [auth] token") for line in lines)
    assert any(line.startswith("FIX  public_url: [exotel] public_url is not set") for line in lines)
    assert any(line.startswith("FIX  Exotel API: no [exotel] account_sid") for line in lines)
    assert "OK   reply path: HEAD and GET answered to Exotel's contract" in lines
    assert not (tmp_path / "exosms.db").exists()  # the doctor changes nothing

    with fake_exotel(tmp_path) as fake:
        (tmp_path / "templates.toml").write_text(
            '[[template]]\nid = "1107160000000000031"\n'
            'content = "You will get no more SMS from ACME. Send START to join again."\n'
            '[[template]]\nid = "1107160000000000032"\n'
            'content = "Welcome back to ACME SMS. Send STOP to opt out."\n'
        )
        (tmp_path / "exosms.toml").write_text(
            '[auth]\ntoken = "a-long-webhook-token-0123"\n'
            "[guards]\n"
            'optout_reply = "You will get no more SMS from ACME. Send START to join again."\n'
            'optin_reply = "Welcome back to ACME SMS. Send STOP to opt out."\n'
            "[exotel]\n"
            'public_url = "https://sms.acme-stores.in"\n'
        )
        assert exosms("db", "upgrade", cwd=tmp_path).returncode == 0
        assert exosms("dlt", "import", "templates.toml", cwd=tmp_path).returncode == 0
        right = exosms("doctor", cwd=tmp_path, env=fake.settings())
        assert right.returncode == 0, right.stdout
        assert right.stdout.splitlines()[-1] == "all OK"
        assert f"OK   Exotel API: credentials accepted by {fake.url}" in right.stdout
        wrong = exosms(
            "doctor", cwd=tmp_path, env={**fake.settings(), "EXOSMS_EXOTEL__API_TOKEN": "wrong"}
        )
        assert wrong.returncode == 1
        assert "FIX  Exotel API: Exotel refused the credentials" in wrong.stdout
        assert "wrong" not in wrong.stdout.replace("Exotel refused", "")  # the secret is not shown
