"""schemathesis against /api/openapi.json on a running server: every check, no 5xx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from inbox_support import API_TOKEN, inbox_env, send_sms
from servers import ServerProcess, free_port

pytestmark = pytest.mark.slow


def test_the_api_matches_its_openapi_description(tmp_path: Path) -> None:
    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'api.db'}",
        args=["--app", "exosms_test_apps:router"],
        env=inbox_env(
            # A destination nobody listens at: its events wait, so /api/forwarding and
            # /api/events have something to show, and replays something to queue.
            EXOSMS_FORWARDING__DESTINATIONS=json.dumps(
                [
                    {
                        "name": "crm",
                        "kind": "webhook",
                        "url": f"http://127.0.0.1:{free_port()}/hook",
                        "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                    }
                ]
            )
        ),
    ).start()
    try:
        for i, body in enumerate(["ECHO hello", "नमस्ते", "=1+1", "BOOM", "nothing"]):
            send_sms(proc.url, f"api{i}", body, sender=f"0987654321{i}")
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{proc.url}/api/openapi.json",
                "--url",
                proc.url,
                "-H",
                f"Authorization: Bearer {API_TOKEN}",
                "--checks",
                "all",
                "--max-examples",
                "60",
                "--seed",
                "20261126",
                "--workers",
                "1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "No issues found" in run.stdout
        assert "Exception in ASGI application" not in proc.log()  # nothing unhandled
    finally:
        proc.stop()
