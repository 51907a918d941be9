"""A new user's way, end to end: ``exosms init`` -> ``exosms doctor`` all OK against the fake
Exotel -> the fake Exotel's applet and webhook calls answered through the nginx recipe ->
the messages counted in ``/metrics`` and logged as JSON (no number, no token)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from fake_exotel import fake_exotel
from proxies import Certificate, need, proxy
from servers import ServerProcess, free_port
from waiting import wait_for

from exosms.config import Settings

pytestmark = pytest.mark.slow

METRICS_TOKEN = "new-user-metrics-0123456789"


def run(workdir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exosms", *args],
        cwd=workdir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def templates(workdir: Path) -> Path:
    """The shop's DLT export: its fixed replies (the STOP and START confirmations) and one
    open template for the demo's ECHO."""
    guards = Settings().guards
    lines = []
    for n, content in enumerate((guards.optout_reply, guards.optin_reply, "{#var#}")):
        lines += [
            "[[template]]",
            f'id = "110716123456789012{n}"',
            f"content = {json.dumps(content)}",
        ]
    (workdir / "dlt.toml").write_text("\n".join(lines) + "\n")
    return workdir / "dlt.toml"


def test_from_init_to_metrics_through_nginx(tmp_path: Path) -> None:
    need("nginx")
    cert = Certificate.make(tmp_path)
    trusted = {"SSL_CERT_FILE": str(cert.cert)}  # the fake Exotel trusts the proxy's certificate
    workdir = tmp_path / "shop"
    workdir.mkdir()
    front_port, server_port = free_port(), free_port()
    public = f"https://localhost:{front_port}"
    with fake_exotel(tmp_path, env=trusted) as fake:
        # Settings a user keeps outside the file (a systemd EnvironmentFile, say).
        env = {
            **fake.settings(),
            "EXOSMS_METRICS__TOKEN": METRICS_TOKEN,
            "EXOSMS_LOG_FORMAT": "json",
            "EXOSMS_AUTH__TRUSTED_PROXIES": '["127.0.0.1/32"]',
        }
        init = run(workdir, "init", "--public-url", public, "--path", "webhook", env=env)
        assert init.returncode == 0, init.stderr
        token = tomllib.loads((workdir / "exosms.toml").read_text())["auth"]["token"]
        assert f"{public}/exotel/webhook/{token}" in init.stdout + init.stderr
        assert run(workdir, "db", "upgrade", env=env).returncode == 0
        imported = run(workdir, "dlt", "import", str(templates(workdir)), env=env)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        doctor = run(workdir, "doctor", env=env)
        lines = doctor.stdout.splitlines()
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert lines[-1] == "all OK", doctor.stdout
        assert len(lines) == 7 and all(line.startswith("OK ") for line in lines[:-1])
        assert any("Exotel API" in line and fake.url in line for line in lines)

        server = ServerProcess(
            workdir, server_port, f"sqlite:///{workdir / 'exosms.db'}", env=env
        ).start()  # the demo rules, as README's first command
        try:
            with proxy("nginx", [f"127.0.0.1:{server_port}"], tmp_path, cert, port=front_port):
                called = fake.applet(f"{public}/exotel/sms/{token}", "ECHO hello")
                assert (called["status"], called["reply"]) == (200, "hello")
                webhook_sid = fake.webhook(f"{public}/exotel/webhook/{token}", "ECHO on its way")
                wait_for(lambda: any(m["Body"] == "on its way" for m in fake.messages()))

                def scrape() -> str:
                    answer = httpx.get(
                        f"{public}/metrics",
                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                        verify=cert.context(),
                    )
                    assert answer.status_code == 200
                    return answer.text

                # The delivery report comes back through nginx to /exotel/status/<token>.
                wait_for(lambda: 'exosms_status_callbacks_total{status="sent"} 1.0' in scrape())
                counted = scrape()
        finally:
            server.stop()
    for sample in (
        'exosms_requests_total{endpoint="applet",status="200"} 2.0',  # HEAD and GET
        'exosms_requests_total{endpoint="webhook",status="200"} 1.0',
        'exosms_outcomes_total{outcome="replied"} 2.0',
        'exosms_outcomes_total{outcome="replayed"} 1.0',
        'exosms_sends_total{result="sent"} 1.0',
        'exosms_dlt_verdicts_total{verdict="matched"} 2.0',
    ):
        assert sample in counted, sample
    # The log: one JSON object per line, the two messages in it, no number and no token.
    log = [line for line in server.log().splitlines() if line.strip()]
    events = [json.loads(line) for line in log]
    assert {"time", "level", "logger", "message"} <= set(events[0])
    said = "\n".join(event["message"] for event in events)
    assert f"sid={called['SmsSid']} HEAD replied" in said  # HEAD first; its GET replayed
    assert f"sid={called['SmsSid']} GET replayed" in said
    assert f"sid={webhook_sid} POST webhook replied" in said
    text = server.log()
    assert "9052161119" not in text and token not in text and METRICS_TOKEN not in text
