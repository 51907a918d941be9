"""HTTP over a plain socket, so that tests see the exact bytes a server sends."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class RawResponse:
    status_line: bytes
    header_lines: list[bytes]  # as sent, without CRLF
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def header(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        return [
            line.split(b":", 1)[1].strip()
            for line in self.header_lines
            if line.split(b":", 1)[0].strip().lower() == wanted
        ]

    def headers_without_date(self) -> list[bytes]:
        return [line for line in self.header_lines if not line.lower().startswith(b"date:")]


def request(port: int, method: str, target: str, version: str = "HTTP/1.1") -> RawResponse:
    """Send one request with ``Connection: close`` and read everything until the server closes."""
    head = f"{method} {target} {version}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    header_block, _, body = data.partition(b"\r\n\r\n")
    lines = header_block.split(b"\r\n")
    return RawResponse(lines[0], lines[1:], body)
