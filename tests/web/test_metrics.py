"""``/metrics``: off by default, behind its bearer token, counting across ``--workers``, and
every metric the Grafana dashboard in docs/ draws is served."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_exotel import FakeExotelProcess, fake_exotel
from servers import ServerProcess, free_port, server_factory
from waiting import wait_for

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKEN = "metrics-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = f"""
[metrics]
token = "{TOKEN}"

[forwarding]
run = "server"

[[forwarding.destinations]]
name = "crm"
kind = "webhook"
url = "http://127.0.0.1:9/hooks"  # nothing listens: events wait, and their lag grows
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"""
SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([-+.eE0-9a-zA-Z]+)$")


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, from Prometheus' text format."""
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            found[match[1] + (match[2] or "")] = float(match[3])
    return found


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeExotelProcess]:
    with fake_exotel(tmp_path) as running:
        yield running


@pytest.fixture
def served(tmp_path: Path, fake: FakeExotelProcess) -> Iterator[ServerProcess]:
    workdir = tmp_path / "server"
    workdir.mkdir()
    (workdir / "exosms.toml").write_text(CONFIG)
    port = free_port()
    proc = ServerProcess(
        workdir,
        port,
        f"sqlite:///{workdir / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router", "--workers", "2"],
        env={**fake.settings(), "EXOSMS_EXOTEL__PUBLIC_URL": f"http://127.0.0.1:{port}"},
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def scrape(proc: ServerProcess) -> str:
    answer = httpx.get(f"{proc.url}/metrics", headers=BEARER)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


def test_metrics_are_off_without_a_token(tmp_path: Path) -> None:
    with server_factory(tmp_path) as make:
        proc = make()
        assert httpx.get(f"{proc.url}/metrics", headers=BEARER).status_code == 404


def test_every_worker_is_counted_and_the_token_is_needed(
    served: ServerProcess, fake: FakeExotelProcess
) -> None:
    for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        refused = httpx.get(f"{served.url}/metrics", headers=wrong)
        assert refused.status_code == 401
        assert TOKEN not in refused.text
    applet = f"{served.url}/exotel/sms"
    count = 20
    for n in range(count):  # new connections each time: both workers answer some
        query = {"SmsSid": f"m{n}", "From": "09052161119", "To": "08039591234", "Body": "ECHO hi"}
        head = httpx.head(applet, params=query)
        get = httpx.get(applet, params=query)
        assert (head.status_code, get.status_code, get.text) == (200, 200, "hi")
    sid = fake.webhook(f"{served.url}/exotel/webhook", "ECHO on its way")
    wait_for(lambda: any(m["Body"] == "on its way" for m in fake.messages()))

    def settled() -> bool:
        now = samples(scrape(served))
        return now.get('exosms_status_callbacks_total{status="sent"}', 0) >= 1

    wait_for(settled)  # the fake's status callback, to whichever worker
    found = samples(scrape(served))
    assert found['exosms_requests_total{endpoint="applet",status="200"}'] == 2 * count
    assert found['exosms_requests_total{endpoint="webhook",status="200"}'] == 1
    assert found['exosms_outcomes_total{outcome="replied"}'] == count + 1
    assert found['exosms_outcomes_total{outcome="replayed"}'] == count
    assert found['exosms_answer_seconds_count{endpoint="applet"}'] == 2 * count
    assert found["exosms_handler_seconds_count"] == count + 1
    assert found['exosms_sends_total{result="sent"}'] == 1
    assert found['exosms_dlt_verdicts_total{verdict="unmatched"}'] == count + 1
    for state in ("pending", "sending", "posting", "unknown", "held"):
        assert found[f'exosms_outbox_messages{{state="{state}"}}'] == 0
    # Every message (and the reply's sent event) waits for the unreachable destination.
    assert found['exosms_forwarding_pending{destination="crm"}'] >= count + 1
    assert found['exosms_forwarding_lag_seconds{destination="crm"}'] > 0
    assert sid  # the webhook's SmsSid was answered
    # No token and no customer's number in what a scraper sees.
    text = scrape(served)
    assert TOKEN not in text and "9052161119" not in text


def test_every_metric_the_dashboard_draws_is_served(served: ServerProcess) -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    drawn = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bexosms_[a-z_]+", target["expr"])
    }
    assert len(drawn) >= 12
    httpx.get(f"{served.url}/exotel/sms", params={"SmsSid": "d1", "Body": "ECHO x"})
    served_text = scrape(served)
    types = set(re.findall(r"^# TYPE (\S+) ", served_text, re.M))
    counters = {name + "_total" for name in types} | types
    missing = sorted(name for name in drawn if name not in counters)
    assert not missing, f"the dashboard draws metrics /metrics does not serve: {missing}"
    documented = (DOCS / "metrics.md").read_text()
    undocumented = sorted(name for name in drawn if name not in documented)
    assert not undocumented, f"docs/metrics.md does not describe: {undocumented}"


def test_serve_removes_its_metrics_directory(tmp_path: Path) -> None:
    with server_factory(tmp_path) as make:
        proc = make(f'[metrics]\ntoken = "{TOKEN}"\n', TMPDIR=str(tmp_path))
        httpx.get(f"{proc.url}/exotel/sms", params={"SmsSid": "r1", "Body": "ECHO x"})
        made = list(tmp_path.glob("exosms-metrics-*"))
        assert len(made) == 1 and list(made[0].glob("*.db"))
        proc.stop()
        assert not made[0].exists()
