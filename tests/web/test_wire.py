"""The Send-a-Reply wire contract, over real sockets against a real `exosms serve`."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
import uuid
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawhttp import request
from servers import ServerProcess

PATH = "/exotel/sms"


def sid() -> str:
    return uuid.uuid4().hex


def target(**params: str) -> str:
    return PATH + "?" + urlencode(params)


def sms(body: str, sms_sid: str | None = None, sender: str = "9052161119") -> str:
    return target(
        SmsSid=sms_sid or sid(), From=sender, To="56070", Date="2026-11-26 10:00:00", Body=body
    )


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_reply_headers_are_byte_exact(server: ServerProcess, version: str) -> None:
    answer = request(server.port, "GET", sms("ECHO Hello World"), version)
    assert answer.status_line == b"HTTP/1.1 200 OK"
    assert answer.headers_without_date() in (
        [b"content-type: text/plain", b"content-length: 11", b"connection: close"],
        [b"content-type: text/plain", b"content-length: 11"],
    )
    assert answer.header("transfer-encoding") == []
    assert answer.body == b"Hello World"


def test_the_applet_url_with_a_trailing_slash_is_the_applet(server: ServerProcess) -> None:
    # An Exotel flow may be saved with the URL pasted as `.../exotel/sms/`: answered, not
    # redirected (Exotel is not documented to follow redirects).
    answer = request(server.port, "GET", sms("ECHO slash").replace(PATH, PATH + "/", 1))
    assert (answer.status, answer.body) == (200, b"slash")
    assert answer.header("content-type") == [b"text/plain"]


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_no_reply_is_content_length_zero_and_empty(server: ServerProcess, version: str) -> None:
    answer = request(server.port, "GET", sms("nothing matches this"), version)
    assert answer.status == 200
    assert answer.header("content-type") == [b"text/plain"]
    assert answer.header("content-length") == [b"0"]
    assert answer.header("transfer-encoding") == []
    assert answer.body == b""


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
@pytest.mark.parametrize("body", ["ECHO Hello World", "no rule for this"])
def test_head_has_the_same_headers_as_get(server: ServerProcess, version: str, body: str) -> None:
    url = sms(body)
    head = request(server.port, "HEAD", url, version)
    get = request(server.port, "GET", url, version)
    assert head.status_line == get.status_line
    assert head.headers_without_date() == get.headers_without_date()
    assert head.body == b""
    # The GET after the HEAD replays what the HEAD computed: the handler ran once.
    the_sid = url.split("SmsSid=")[1].split("&")[0]
    assert server.calls(the_sid) == [the_sid]


def test_head_then_get_calls_the_handler_once_and_returns_the_same_bytes(
    server: ServerProcess,
) -> None:
    the_sid = sid()
    url = sms("SLOWECHO hi", the_sid)
    head = request(server.port, "HEAD", url)
    first = request(server.port, "GET", url)
    again = request(server.port, "GET", url)
    assert first.body == again.body == f"hi ({the_sid})".encode()
    assert head.headers_without_date() == first.headers_without_date()
    assert first.headers_without_date() == again.headers_without_date()
    assert server.calls(the_sid) == [the_sid]


def read_answers(sock: socket.socket, methods: str) -> list[bytes]:
    """The answers to ``methods`` (one letter each: H for HEAD, G for GET) read off one
    kept-alive connection, each as its exact bytes."""
    data = b""
    answers: list[bytes] = []
    sock.settimeout(10)
    while len(answers) < len(methods):
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[: end + 4]
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            size = len(head) + (0 if methods[len(answers)] == "H" else length)
            if len(data) >= size:
                answers.append(data[:size])
                data = data[size:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(answers)} answers"
        data += chunk
    return answers


def without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"date:"))


def test_repeats_on_one_kept_alive_connection_are_the_same_bytes(server: ServerProcess) -> None:
    # Exotel's GET after its HEAD is answered from memory, before any task starts
    # (web.protocol): byte for byte what the first answer was, in order when pipelined.
    the_sid = sid()
    target_ = sms("ECHO once", the_sid)
    get = f"GET {target_} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(get.replace(b"GET", b"HEAD", 1))
        (head,) = read_answers(sock, "H")
        sock.sendall(get)
        (first,) = read_answers(sock, "G")
        sock.sendall(get + get.replace(b"GET", b"HEAD", 1) + get)  # pipelined
        repeats = read_answers(sock, "GHG")
    assert first.endswith(b"\r\n\r\nonce")
    assert without_date(head) + b"once" == without_date(first)
    assert [without_date(a) for a in repeats] == [
        without_date(first),
        without_date(head),
        without_date(first),
    ]
    assert server.calls(the_sid) == [the_sid]
    closing = request(server.port, "GET", target_, "HTTP/1.0")  # and it closes after
    assert closing.headers_without_date()[-1] == b"connection: close"
    assert closing.body == b"once"


def test_fifty_concurrent_requests_for_one_sid_call_the_handler_once(
    server: ServerProcess,
) -> None:
    the_sid = sid()
    url = server.url + sms("SLOWECHO together", the_sid)

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            return await asyncio.gather(
                *(client.request("HEAD" if i % 2 else "GET", url) for i in range(50))
            )

    answers = asyncio.run(fire())
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["content-length"] for a in answers} == {str(len(f"together ({the_sid})"))}
    assert {a.content for a in answers if a.request.method == "GET"} == {
        f"together ({the_sid})".encode()
    }
    assert server.calls(the_sid) == [the_sid]


def test_url_check_without_sms_sid_stores_nothing(server: ServerProcess) -> None:
    for url in (PATH, PATH + "?", PATH + "?From=9052161119&Body=hi"):
        for method in ("HEAD", "GET"):
            answer = request(server.port, method, url)
            assert answer.status == 200
            assert answer.header("content-type") == [b"text/plain"]
            assert answer.header("content-length") == [b"0"]
            assert answer.body == b""
    rows = httpx.get(server.url + "/healthz")
    assert rows.status_code == 200


def test_form_encoding_plus_is_space_and_encoded_plus_senders(server: ServerProcess) -> None:
    raw = f"{PATH}?SmsSid={sid()}&From=%2B919052161119&To=56070&Body=FROM+me"
    answer = request(server.port, "GET", raw)
    assert answer.body == b"+919052161119 '+919052161119' -> 56070"
    # An unencoded '+' arrives as a space: still the same number.
    raw = f"{PATH}?SmsSid={sid()}&From=+919052161119&To=56070&Body=FROM"
    assert request(server.port, "GET", raw).body == b"+919052161119 ' 919052161119' -> 56070"
    raw = f"{PATH}?SmsSid={sid()}&From=09052161119&To=56070&Body=FROM"
    assert request(server.port, "GET", raw).body.startswith(b"+919052161119 ")


@pytest.mark.parametrize(
    "body, reply",
    [
        ("ECHO नमस्ते दुनिया", "नमस्ते दुनिया"),
        ("ECHO 😀 order 12 🙏", "😀 order 12 🙏"),
        ("नमस्ते राम", "नमस्ते 🙏 राम"),
    ],
)
def test_hindi_and_emoji_round_trip(server: ServerProcess, body: str, reply: str) -> None:
    answer = request(server.port, "GET", sms(body))
    encoded = reply.encode("utf-8")
    assert answer.body == encoded
    assert answer.header("content-length") == [str(len(encoded)).encode()]


@pytest.mark.parametrize(
    "query, status, reason",
    [
        ("SmsSid=a1&Body=hi", 400, b"missing From\n"),
        ("SmsSid=a2&From=&Body=hi", 400, b"missing From\n"),
        ("SmsSid=a3&From=1&Body=" + "x" * 10_001, 400, b"Body longer than 10000 characters\n"),
        ("SmsSid=a4&SmsSid=a5&From=1", 400, b"SmsSid given twice with different values\n"),
        ("SmsSid=a%20b&From=1", 400, b"SmsSid must be 1 to 128 printable ASCII characters\n"),
        ("SmsSid=a6&From=%0A1", 400, b"From contains control characters\n"),
        ("SmsSid=a7&From=1&Body=" + "x" * 61_000, 414, b"query string longer than 60000 bytes\n"),
    ],
)
def test_bad_input_gets_a_one_line_reason(
    server: ServerProcess, query: str, status: int, reason: bytes
) -> None:
    answer = request(server.port, "GET", f"{PATH}?{query}")
    assert answer.status == status
    assert answer.header("content-type") == [b"text/plain"]
    assert answer.body == reason
    head = request(server.port, "HEAD", f"{PATH}?{query}")
    assert head.headers_without_date() == answer.headers_without_date()


def test_bad_input_is_not_stored(server: ServerProcess) -> None:
    request(server.port, "GET", f"{PATH}?SmsSid=notstored1&Body=ECHO+hi")
    # The same SmsSid, now valid, is answered fresh: nothing was kept from the bad request.
    answer = request(server.port, "GET", f"{PATH}?SmsSid=notstored1&From=1&Body=ECHO+hi")
    assert answer.body == b"hi"


def test_invalid_percent_encoding_and_utf8_are_stored_with_replacement(
    server: ServerProcess,
) -> None:
    answer = request(server.port, "GET", f"{PATH}?SmsSid={sid()}&From=1&Body=ECHO+50%ZZ+%FF%FEok")
    assert answer.status == 200
    assert answer.body == "50%ZZ \ufffd\ufffdok".encode()


def test_other_methods_get_405(server: ServerProcess) -> None:
    answer = request(server.port, "POST", sms("ECHO hi"))
    assert answer.status == 405
    assert answer.header("allow") == [b"GET, HEAD"]


def test_slow_handler_gets_the_fallback_fast(server: ServerProcess) -> None:
    for body in ("SLEEP 5", "BLOCK 3"):
        the_sid = sid()
        started = time.monotonic()
        answer = request(server.port, "GET", sms(body, the_sid))
        elapsed = time.monotonic() - started
        assert answer.status == 200
        assert answer.body == b""  # default fallback: no reply
        assert elapsed < 1.5  # deadline is 0.5 s in this server
        assert server.calls(the_sid) == [the_sid]


def test_raising_handler_and_wrong_type_get_the_fallback(server: ServerProcess) -> None:
    for body in ("BOOM", "WRONGTYPE"):
        answer = request(server.port, "GET", sms(body))
        assert answer.status == 200
        assert answer.body == b""
    assert "RuntimeError: the order database is down" in server.log()


_query_chars = st.characters(
    codec="ascii", exclude_characters=" #\r\n\t\x00\x7f", exclude_categories=["Cc"]
)
_param = st.tuples(
    st.one_of(st.sampled_from(["SmsSid", "From", "To", "Date", "Body"]), st.text(_query_chars)),
    st.one_of(st.text(_query_chars, max_size=40), st.text(max_size=40).map(quote)),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.one_of(
        st.text(_query_chars, max_size=200),
        st.lists(_param, max_size=8).map(lambda ps: "&".join(f"{k}={v}" for k, v in ps)),
    ),
    method=st.sampled_from(["GET", "HEAD"]),
)
def test_no_query_string_produces_a_server_error(
    server: ServerProcess, query: str, method: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, f"{PATH}?{query}")
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    assert answer.status in (200, 400, 414), (query, answer.status)
    assert answer.getheader("content-type") == "text/plain"
