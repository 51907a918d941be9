"""Debian's nginx, Caddy and HAProxy, started from the recipes in docs/deploy/ on loopback.

Only the site-specific values are replaced (the backend addresses, the listening address,
the server name and the certificate paths): whatever else the recipe says is what runs.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servers import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
BACKENDS = ("10.0.0.11:8000", "10.0.0.12:8000")  # as the recipes write them
SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"
OPENSSL = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"]
OPENSSL += ["/CN=localhost", "-addext", SAN]
BINARIES = {"nginx": "/usr/sbin/nginx", "caddy": "/usr/bin/caddy", "haproxy": "/usr/sbin/haproxy"}


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for ``localhost`` and 127.0.0.1."""

    cert: Path
    key: Path
    combined: Path  # HAProxy's one-file form

    @classmethod
    def make(cls, folder: Path) -> Certificate:
        cert, key, combined = folder / "cert.pem", folder / "key.pem", folder / "combined.pem"
        subprocess.run(
            [*OPENSSL, "-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
        combined.write_bytes(cert.read_bytes() + key.read_bytes())
        return cls(cert, key, combined)

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


@dataclass
class Proxy:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


def need(name: str) -> str:
    """The proxy's binary; under CI=true its absence fails the test, else skips it."""
    binary = BINARIES[name]
    if Path(binary).exists():
        return binary
    why = f"{name} is not installed (apt-get install {'nginx-light' if name == 'nginx' else name})"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def recipe(name: str, backends: Sequence[str], port: int, cert: Certificate) -> str:
    """The recipe's text with this machine's addresses, name and certificate."""
    file = {"nginx": "nginx.conf", "caddy": "Caddyfile", "haproxy": "haproxy.cfg"}[name]
    text = (DEPLOY / file).read_text()
    for ours, theirs in zip(BACKENDS, list(backends) * 2, strict=False):
        assert ours in text, f"{file} no longer names {ours}"
        text = text.replace(ours, theirs)
    replaced = {
        "nginx": [
            ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
            ("server_name sms.example.in;", "server_name localhost;"),
            ("/etc/letsencrypt/live/sms.example.in/fullchain.pem", str(cert.cert)),
            ("/etc/letsencrypt/live/sms.example.in/privkey.pem", str(cert.key)),
        ],
        "caddy": [("sms.example.in {", f"https://localhost:{port} {{\n    tls {cert.cert} {cert.key}")],
        "haproxy": [
            ("bind :443 ssl crt /etc/haproxy/certs/sms.example.in.pem",
             f"bind 127.0.0.1:{port} ssl crt {cert.combined}"),
        ],
    }[name]  # fmt: skip
    for old, new in replaced:
        assert old in text, f"{file} no longer has {old!r}"
        text = text.replace(old, new)
    return text


def _command(name: str, binary: str, text: str, folder: Path, port: int) -> list[str]:
    if name == "nginx":
        (folder / "exosms.conf").write_text(text)
        (folder / "nginx.conf").write_text(
            f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nworker_processes 1;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n    access_log off;\n    client_body_temp_path {folder}/body;\n"
            f"    proxy_temp_path {folder}/proxy;\n    include {folder}/exosms.conf;\n}}\n"
        )
        return [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"]
    if name == "caddy":
        # Caddy's own state (no admin port, nothing outside this folder, no other ports).
        http_port = free_port()
        glob = (
            f"{{\n    admin off\n    auto_https disable_redirects\n    http_port {http_port}\n"
            f"    https_port {port}\n    storage file_system {folder}/caddy\n}}\n\n"
        )
        (folder / "Caddyfile").write_text(glob + text)
        return [binary, "run", "--config", str(folder / "Caddyfile"), "--adapter", "caddyfile"]
    (folder / "haproxy.cfg").write_text(text)
    return [binary, "-db", "-f", str(folder / "haproxy.cfg")]


@contextmanager
def proxy(
    name: str,
    backends: Sequence[str],
    folder: Path,
    cert: Certificate,
    port: int | None = None,
) -> Iterator[Proxy]:
    """The recipe ``name`` on ``port`` (default: a free one) in front of ``backends``
    (``host:port``, answering already), until the end."""
    binary = need(name)
    folder = folder / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port = port or free_port()
    command = _command(name, binary, recipe(name, backends, port, cert), folder, port)
    log = folder / "proxy.log"
    env = {
        **os.environ,
        "HOME": str(folder),
        "XDG_DATA_HOME": str(folder),
        "XDG_CONFIG_HOME": str(folder),
    }
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    running = Proxy(name, port, process, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if (
                    httpx.get(f"{running.url}/healthz", verify=cert.context(), timeout=2).text
                    == "ok\n"
                ):
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
