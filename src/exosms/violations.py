"""How an answer to Exotel's applet breaks its contract: each violation names the rule,
what the server did instead, and the fix (``exosms simulate`` shows them)."""

from __future__ import annotations

from dataclasses import dataclass

from exosms.httpraw import Exchange

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Violation:
    """One way an answer breaks the applet's contract (``severity``: error or warning)."""

    code: str
    severity: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
        }


def exchange_violations(ex: Exchange, budget: float) -> list[Violation]:
    """What is wrong with one answer (HEAD or GET) by itself, within ``budget`` seconds."""
    found: list[Violation] = []
    if 300 <= ex.status < 400:
        found.append(
            Violation(
                "redirect",
                ERROR,
                f"{ex.method} answered {ex.status} redirecting to {ex.first('location')!r}; "
                "Exotel does not follow redirects to find the reply.",
                "Enter the final URL in Exotel's applet (watch http vs https and trailing /).",
            )
        )
    elif ex.status != 200:
        found.append(
            Violation(
                "status",
                ERROR,
                f"{ex.method} answered {ex.status}; Exotel needs 200 to send a reply.",
                "Answer 200 for every SMS; for no reply, send an empty body.",
            )
        )
    types = ex.values("content-type")
    if types != ["text/plain"]:
        seen = " and ".join(repr(t) for t in types) if types else "missing"
        found.append(
            Violation(
                "content-type",
                ERROR,
                f"{ex.method} Content-Type is {seen}; Exotel requires exactly 'text/plain', "
                "with nothing else (no '; charset=utf-8').",
                "Set the header yourself: most frameworks add a charset to text responses.",
            )
        )
    lengths = ex.values("content-length")
    if ex.chunked:
        found.append(
            Violation(
                "chunked",
                ERROR,
                f"{ex.method} answer is sent with Transfer-Encoding: chunked.",
                "Send the whole reply at once with a Content-Length header (no streaming).",
            )
        )
    elif not lengths:
        found.append(
            Violation(
                "content-length-missing",
                ERROR,
                f"{ex.method} answer has no Content-Length.",
                "Send Content-Length: the UTF-8 byte length of the reply (0 for no reply).",
            )
        )
    elif len(set(lengths)) > 1 or not lengths[0].isdigit():
        found.append(
            Violation(
                "content-length-wrong",
                ERROR,
                f"{ex.method} Content-Length is {', '.join(lengths)!r}.",
                "Send one Content-Length: the UTF-8 byte length of the reply.",
            )
        )
    elif ex.method == "GET":
        declared = int(lengths[0])
        if declared == 0 and ex.extra:
            found.append(
                Violation(
                    "body-with-zero-length",
                    ERROR,
                    f"GET says Content-Length: 0 (no reply) but then sends {len(ex.extra)} "
                    f"bytes: {ex.extra[:40]!r}.",
                    "Either send no body (no reply) or set Content-Length to the body's length.",
                )
            )
        elif ex.extra or len(ex.body) != declared:
            actual = len(ex.body) + len(ex.extra)
            found.append(
                Violation(
                    "content-length-wrong",
                    ERROR,
                    f"GET Content-Length is {declared} but the body is {actual} bytes; "
                    "the reply will be cut or the request will hang.",
                    "Count bytes, not characters: Hindi and emoji take 3 to 4 bytes each in UTF-8.",
                )
            )
    if ex.method == "HEAD" and ex.extra:
        found.append(
            Violation(
                "head-body",
                ERROR,
                f"HEAD answer carries a body ({len(ex.extra)} bytes).",
                "Answer HEAD with the GET's headers and no body.",
            )
        )
    if ex.elapsed_ms > budget * 1000:
        found.append(
            Violation(
                "slow",
                ERROR,
                f"{ex.method} took {ex.elapsed_ms:.0f} ms, over the {budget:g} s budget; "
                "Exotel's timeout is not published and a late reply is lost.",
                "Answer within a second or two; move slow lookups out of the request.",
            )
        )
    return found


_IGNORED_IN_COMPARISON = {"date", "connection", "keep-alive"}


def head_violations(head: Exchange, get: Exchange) -> list[Violation]:
    """What is wrong with the HEAD's answer beside the GET's (Exotel asks both)."""
    found: list[Violation] = []
    if head.status == 405:
        found.append(
            Violation(
                "head-405",
                ERROR,
                "HEAD answered 405 Method Not Allowed; Exotel sends HEAD before every GET.",
                "Allow HEAD on the route (FastAPI: list 'HEAD' in methods; Starlette's "
                "Route does it for you).",
            )
        )
        return found
    if head.status != get.status:
        found.append(
            Violation(
                "head-status",
                ERROR,
                f"HEAD answered {head.status} but GET answered {get.status}.",
                "Answer HEAD exactly as GET, without the body.",
            )
        )
    head_headers = sorted(h for h in head.headers if h[0] not in _IGNORED_IN_COMPARISON)
    get_headers = sorted(h for h in get.headers if h[0] not in _IGNORED_IN_COMPARISON)
    if head_headers != get_headers:
        only_head = [f"{k}: {v}" for k, v in head_headers if (k, v) not in get_headers]
        only_get = [f"{k}: {v}" for k, v in get_headers if (k, v) not in head_headers]
        found.append(
            Violation(
                "head-headers",
                ERROR,
                "HEAD and GET headers differ: HEAD has "
                f"{only_head or 'nothing extra'}, GET has {only_get or 'nothing extra'}.",
                "Exotel's contract: HEAD MUST return the exact same headers as GET.",
            )
        )
    return found
