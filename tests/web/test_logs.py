"""No secret and no customer's number reaches a log line: every path is run with known
secrets and a known number at log_level debug, and all the server's output is searched."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fake_exotel import fake_exotel
from servers import ServerProcess, free_port

from exosms.logs import Redactor

pytestmark = pytest.mark.slow

TOKEN = "tok3n-for-the-log-test"
API_TOKEN = "api-t0ken-for-the-log-test"
NUMBER = "9052161119"
OTHER = "9876501234"  # a number inside a message body


def test_no_secret_or_number_in_any_log_line(tmp_path: Path) -> None:
    with fake_exotel(tmp_path) as fake:
        port = free_port()
        env = {
            **fake.settings(),
            "EXOSMS_EXOTEL__API_TOKEN": API_TOKEN,
            "EXOSMS_EXOTEL__PUBLIC_URL": f"http://127.0.0.1:{port}",
            "EXOSMS_AUTH__TOKEN": TOKEN,
            "EXOSMS_LOG_LEVEL": "debug",
        }
        proc = ServerProcess(
            tmp_path,
            port,
            f"sqlite:///{tmp_path / 'logs.db'}",
            args=["--app", "exosms_test_apps:router"],
            env=env,
        ).start()
        try:
            base = proc.url
            params = {"SmsSid": "log-1", "From": NUMBER, "To": "56070", "Body": f"ECHO {OTHER}"}
            assert httpx.get(f"{base}/exotel/sms/{TOKEN}", params=params).status_code == 200
            assert (
                httpx.get(f"{base}/exotel/sms", params={**params, "token": TOKEN}).status_code
                == 200
            )
            assert httpx.get(f"{base}/exotel/sms/wrong", params=params).status_code == 401
            params["SmsSid"] = "log-2"
            params["Body"] = "BOOM"  # a handler that raises: its traceback is logged
            assert httpx.get(f"{base}/exotel/sms/{TOKEN}", params=params).status_code == 200
            webhook = {
                "SmsSid": "log-3",
                "Sender": NUMBER,
                "ReceivedOn": "56070",
                "MessageBody": f"ECHO call {OTHER}",
            }
            assert httpx.post(f"{base}/exotel/webhook/{TOKEN}", json=webhook).status_code == 200
            deadline = time.monotonic() + 15
            while not any("outbox 1 failed" in line for line in proc.log().splitlines()):
                assert time.monotonic() < deadline, proc.log()
                time.sleep(0.05)
            status = {"SmsSid": "nobody", "Status": "sent", "To": f"0{NUMBER}"}
            assert httpx.post(f"{base}/exotel/status/{TOKEN}", data=status).status_code == 200
        finally:
            proc.stop()
        log = proc.log()
    assert "sid=log-1" in log and "outbox 1 failed" in log  # the lines were written
    for leaked in (TOKEN, API_TOKEN, NUMBER, OTHER, "SmsSid=", "/Accounts/acme/"):
        assert leaked not in log, f"{leaked!r} reached the log"


def test_the_redactor_masks_what_libraries_write() -> None:
    redactor = Redactor([TOKEN, API_TOKEN])
    cases = {
        f'HTTP Request: POST https://key:{API_TOKEN}@api.exotel.com/v1/Accounts/acme1/Sms/send.json "HTTP/1.1 200 OK"': 'HTTP Request: POST https://<credentials>@api.exotel.com/v1/Accounts/<account>/Sms/send.json "HTTP/1.1 200 OK"',
        f"GET /exotel/sms/{TOKEN}?SmsSid=1&From={NUMBER}": "GET /exotel/sms/<token>?<query>",
        f"to +91{NUMBER}, 0{NUMBER}, 91 {NUMBER}": "to <number>, <number>, <number>",
        "sid=abc GET replied 1.2ms": "sid=abc GET replied 1.2ms",
    }
    for raw, clean in cases.items():
        assert redactor.redact(raw) == clean


def test_json_logs_are_one_object_per_line_redacted_alike(tmp_path: Path) -> None:
    import json

    proc = ServerProcess(
        tmp_path,
        free_port(),
        f"sqlite:///{tmp_path / 'json.db'}",
        args=["--app", "exosms_test_apps:router"],
        env={"EXOSMS_LOG_FORMAT": "json", "EXOSMS_AUTH__TOKEN": TOKEN},
    ).start()
    try:
        params = {"SmsSid": "json-1", "From": NUMBER, "To": "56070", "Body": f"ECHO {OTHER}"}
        assert httpx.get(f"{proc.url}/exotel/sms/{TOKEN}", params=params).status_code == 200
        assert httpx.get(f"{proc.url}/exotel/sms/nope", params=params).status_code == 401
        deadline = time.monotonic() + 10  # the request's line is written after its answer
        while "json-1" not in proc.log():
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.05)
    finally:
        proc.stop()
    lines = [line for line in proc.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    assert all(
        r["time"].endswith("Z") and r["level"] in ("info", "warning", "error", "debug")
        for r in records
    )
    request = next(r for r in records if "json-1" in r["message"])
    assert request["logger"] == "exosms.request" and request["level"] == "info"
    assert any("wrong token" in r["message"] for r in records)
    text = proc.log()
    assert NUMBER not in text and OTHER not in text and TOKEN not in text
