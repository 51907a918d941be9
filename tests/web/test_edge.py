"""The HTTP edge over real sockets against a real `exosms serve`: slow and huge requests,
connection limits, and the server's own answers in the applet contract's shape."""

from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess, server_factory

TOKEN = "edge-t0ken-that-must-never-be-logged"


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    with server_factory(tmp_path) as make:
        yield make


def sms(body: str, sender: str = "9052161119") -> dict[str, str]:
    return {"SmsSid": uuid.uuid4().hex, "From": sender, "To": "56070", "Body": body}


def connect(proc: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", proc.port))
    return sock


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def contract_shaped(answer: bytes, status: int) -> str:
    """The reason of one of our own answers, checked to be in the applet's shape."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert headers[b"content-type"] == b"text/plain", headers
    assert int(headers[b"content-length"]) == len(body)
    return body.decode()


def normal_answers(proc: ServerProcess, count: int, source: str = "127.0.0.2") -> list[str]:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        return [
            client.get(f"{proc.url}/exotel/sms", params=sms(f"ECHO n{n}", f"90000{n:05d}")).text
            for n in range(count)
        ]


def test_a_trickled_body_is_cut_at_the_deadline_while_others_are_answered(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server(EXOSMS_REQUEST_TIMEOUT="2")
    sock = connect(proc)
    started = time.monotonic()
    sock.sendall(
        b"POST /exotel/webhook HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n{"
    )
    answer = b""
    while time.monotonic() - started < 8:  # a byte every half second, as an attacker would
        readable, _, _ = select.select([sock], [], [], 0.5)
        if readable:
            answer = read_all(sock)
            break
        try:
            sock.sendall(b" ")
        except (BrokenPipeError, ConnectionResetError):
            break
    took = time.monotonic() - started
    sock.close()
    print(f"trickled body cut after {took:.2f} s (request_timeout 2 s)")
    assert 1.9 < took < 3.5, took
    assert "not received within the time allowed" in contract_shaped(answer, 408)
    assert normal_answers(proc, 5) == [f"n{n}" for n in range(5)]


def test_trickled_headers_are_cut_at_the_deadline_however_often_bytes_arrive(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server(EXOSMS_REQUEST_TIMEOUT="2")
    sock = connect(proc)
    started = time.monotonic()
    sock.sendall(b"GET /exotel/sms?SmsSid=slow HTTP/1.1\r\n")
    answer = b""
    while time.monotonic() - started < 8:
        readable, _, _ = select.select([sock], [], [], 0.4)
        if readable:
            answer = read_all(sock)
            break
        try:
            sock.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            break
    took = time.monotonic() - started
    sock.close()
    assert 1.9 < took < 3.5, took
    contract_shaped(answer, 408)


def test_a_refused_request_is_closed_at_once_without_reading_its_body(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server(f'[auth]\ntoken = "{TOKEN}"\n')
    sock = connect(proc)
    started = time.monotonic()
    sock.sendall(
        b"POST /exotel/webhook HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 5000\r\n\r\n{"
    )
    answer = read_all(sock)  # until the server closes: it must not wait for the 4999 bytes
    took = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:100]
    assert took < 2, took


def test_a_body_over_the_limit_is_refused_before_it_is_sent(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server()
    for path in ("/exotel/webhook", "/api/try", "/inbox/login", "/exotel/status"):
        sock = connect(proc)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {100 * 1024 * 1024}\r\n\r\n".encode()
        )
        reason = contract_shaped(read_all(sock), 413)
        sock.close()
        assert reason == "body longer than 65536 bytes\n", (path, reason)
    # Without a length, chunked: cut as soon as the stream passes the limit. (The webhook,
    # which reads its body: an endpoint that refuses first, like the API with the inbox
    # off, answers that and closes instead, which is right too.)
    sock = connect(proc)
    sock.sendall(
        b"POST /exotel/webhook HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (16384, b"a" * 16384)
    sent = 0
    try:
        for _ in range(64):  # up to 1 MiB; the server refuses after 64 KiB
            sock.sendall(chunk)
            sent += 16384
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert "body longer than 65536 bytes" in contract_shaped(read_all(sock), 413)
    sock.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_huge_headers_are_refused_and_cost_no_memory(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server()
    assert proc.process is not None
    normal_answers(proc, 3, source="127.0.0.1")
    before = rss_kib(proc.process.pid)
    answers: list[bytes] = []

    def attack() -> None:
        sock = connect(proc)
        sock.sendall(b"GET /exotel/sms HTTP/1.1\r\nHost: x\r\nX-Big: ")
        piece = b"a" * 1024 * 1024
        try:
            for _ in range(50):  # 50 MB of one header value
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answers.append(read_all(sock))
        sock.close()

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    grown = rss_kib(proc.process.pid) - before
    print(f"4 x 50 MB headers: RSS {before} KiB -> +{grown} KiB")
    assert grown < 20 * 1024, f"RSS grew by {grown} KiB"
    for answer in answers:
        if answer:  # the refusal may be lost to a reset while the client still writes
            assert "longer than" in contract_shaped(answer, 431)
    assert normal_answers(proc, 3) == ["n0", "n1", "n2"]


def test_too_many_or_too_long_header_lines_get_431_with_a_reason(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server()
    cases = [
        (b"".join(b"X-H%d: 1\r\n" % n for n in range(101)), "more than 100 header lines\n"),
        (b"X-Long: " + b"a" * 9000 + b"\r\n", "header x-long longer than 8192 bytes\n"),
    ]
    for extra, reason in cases:
        sock = connect(proc)
        sock.sendall(b"GET /exotel/sms?SmsSid=h HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
        assert contract_shaped(read_all(sock), 431).lower() == reason
        sock.close()


def test_one_address_cannot_fill_the_server_and_a_full_server_answers_in_shape(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server(EXOSMS_MAX_CONNECTIONS="50", EXOSMS_MAX_CONNECTIONS_PER_ADDRESS="10")
    slow = [connect(proc, "127.0.0.1") for _ in range(49)]
    try:
        for sock in slow:
            sock.sendall(b"GET /exotel/sms?SmsSid=slow HTTP/1.1\r\nHost: x\r\n")
        refused: list[str] = []
        for sock in slow:
            readable, _, _ = select.select([sock], [], [], 0.5 if not refused else 0.05)
            if readable:
                refused.append(contract_shaped(read_all(sock), 503))
        assert refused == ["too many connections from one address\n"] * 39
        assert normal_answers(proc, 20) == [f"n{n}" for n in range(20)]
        # Many addresses together can fill it: then new requests get 503 in the same shape.
        others = [connect(proc, f"127.0.1.{n}") for n in range(1, 41)]
        try:
            transport = httpx.HTTPTransport(local_address="127.0.2.1")
            with httpx.Client(transport=transport, timeout=5) as client:
                full = client.get(f"{proc.url}/exotel/sms", params=sms("ECHO full"))
            assert full.status_code == 503
            assert full.headers["content-type"] == "text/plain"
            assert full.text == "server busy: too many connections\n"
        finally:
            for sock in others:
                sock.close()
    finally:
        for sock in slow:
            sock.close()


def test_malformed_and_pipelined_requests_get_our_400_and_no_error_in_the_log(
    make_server: Callable[..., ServerProcess],
) -> None:
    proc = make_server()
    sock = connect(proc)
    sock.sendall(b"GARBAGE\r\n\r\n")
    assert contract_shaped(read_all(sock), 400) == "malformed HTTP request\n"
    sock.close()
    for round_ in range(30):
        sock = connect(proc)
        pipelined = b"".join(
            f"GET /exotel/sms?SmsSid=p{round_}x{n}&From=9052161119&To=56070&Body=ECHO+{n} "
            "HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            for n in range(5)
        )
        sock.sendall(pipelined + b"\x00\x01 NOT HTTP\r\n\r\n")
        read_all(sock)
        sock.close()
    assert normal_answers(proc, 2, source="127.0.0.1") == ["n0", "n1"]
    log = proc.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
