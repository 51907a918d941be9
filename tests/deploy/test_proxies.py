"""The proxy recipes in docs/deploy/, started from Debian's packages in front of a real
server: Exotel's contract holds through each (no charset added, no chunking, HEAD = GET),
the real client address reaches the allowlist, and the https scheme reaches the cookie."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from inbox_support import password_hash
from proxies import Certificate, Proxy, proxy
from servers import RELAXED_GUARDS, ServerProcess, free_port

pytestmark = pytest.mark.slow

TOKEN = "proxy-token-0123456789"
SIMULATE = [sys.executable, "-m", "exosms", "simulate", "--json"]
ALLOWED, REFUSED = "127.0.0.5", "127.0.0.6"  # two callers, by their own addresses


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxies")


@pytest.fixture(scope="module")
def cert(folder: Path) -> Certificate:
    return Certificate.make(folder)


@pytest.fixture(scope="module")
def backend(folder: Path) -> Iterator[ServerProcess]:
    workdir = folder / "server"
    workdir.mkdir()
    env = {
        **RELAXED_GUARDS,
        "EXOSMS_AUTH__TOKEN": TOKEN,
        "EXOSMS_AUTH__TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "EXOSMS_AUTH__ALLOW_IPS": f'["127.0.0.1/32", "{ALLOWED}/32"]',
        "EXOSMS_INBOX__PASSWORD_HASH": password_hash(),
    }
    proc = ServerProcess(
        workdir,
        free_port(),
        f"sqlite:///{workdir / 'exosms.db'}",
        args=["--app", "exosms_test_apps:router"],
        env=env,
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(params=["nginx", "caddy", "haproxy"])
def front(
    request: pytest.FixtureRequest, backend: ServerProcess, folder: Path, cert: Certificate
) -> Iterator[Proxy]:
    with proxy(request.param, [f"127.0.0.1:{backend.port}"], folder, cert) as running:
        yield running


def from_address(address: str, cert: Certificate) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address, verify=cert.context())
    return httpx.Client(transport=transport, timeout=10)


def test_the_contract_probe_passes_through_the_recipe(front: Proxy, cert: Certificate) -> None:
    for body in ("ECHO hello", "ECHO नमस्ते", "HELP"):
        probe = subprocess.run(
            [*SIMULATE, "--body", body, f"{front.url}/exotel/sms/{TOKEN}"],
            capture_output=True,
            text=True,
            env={**os.environ, "SSL_CERT_FILE": str(cert.cert)},
            timeout=60,
        )
        report = json.loads(probe.stdout)
        assert probe.returncode == 0, (front.name, probe.stdout, probe.stderr)
        assert report["violations"] == [], (front.name, report)
    # The same bytes by hand: exactly text/plain, a true Content-Length, HEAD = GET.
    with from_address("127.0.0.1", cert) as client:
        query = {"SmsSid": f"p-{front.name}", "From": "09052161119", "Body": "ECHO ok"}
        head = client.head(f"{front.url}/exotel/sms/{TOKEN}", params=query)
        get = client.get(f"{front.url}/exotel/sms/{TOKEN}", params=query)
    assert get.headers["content-type"] == "text/plain"
    assert "transfer-encoding" not in get.headers and get.headers["content-length"] == "2"
    assert head.headers["content-length"] == "2" and head.content == b""
    assert get.content == b"ok"


def test_the_real_client_address_reaches_the_allowlist(front: Proxy, cert: Certificate) -> None:
    url = f"{front.url}/exotel/sms/{TOKEN}"
    query = {"SmsSid": f"a-{front.name}", "From": "09052161119", "Body": "ECHO in"}
    with from_address(ALLOWED, cert) as client:
        assert client.get(url, params=query).text == "in"
    with from_address(REFUSED, cert) as client:
        assert client.get(url, params={**query, "SmsSid": f"r-{front.name}"}).status_code == 403
        # A caller naming an allowed address itself is still judged by its own.
        spoofed = client.get(
            url, params={**query, "SmsSid": f"s-{front.name}"}, headers={"X-Forwarded-For": ALLOWED}
        )
        assert spoofed.status_code == 403


def test_the_https_scheme_reaches_the_inbox_cookie(front: Proxy, cert: Certificate) -> None:
    with from_address("127.0.0.1", cert) as client:
        login = client.get(f"{front.url}/inbox/login")
        assert login.status_code == 200
        assert "secure" in login.headers["set-cookie"].lower()
        # Every path is proxied, not only /exotel/.
        assert client.get(f"{front.url}/").text.startswith("exosms is running.")
        assert "https://localhost" in client.get(f"{front.url}/").text
