"""A receiver of exosms's forwarded events: verifies each with standardwebhooks, skips
duplicates by id, and prints the event.

    pip install standardwebhooks
    EXOSMS_WEBHOOK_SECRET=whsec_... python examples/forward_receiver.py 8400

Point a destination at it (``url = "http://127.0.0.1:8400/hook"``, the same secret).
A request whose signature does not verify, or whose timestamp is more than five minutes
off, is refused with 401 and never processed. Keep the processed ids in your database in
real use: this example keeps them in memory.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1_000_000  # bytes; an event is a few KB


def make_handler(secret: str) -> type[BaseHTTPRequestHandler]:
    """A request handler that accepts only events signed with ``secret``."""
    verifier = Webhook(secret)
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._answer(413, "too large")
                return
            body = self.rfile.read(length)
            try:
                event = verifier.verify(body, dict(self.headers.items()))
            except (WebhookVerificationError, ValueError):
                self._answer(401, "signature does not verify")
                return
            if event["id"] in seen:  # at least once: the same id may come again
                self._answer(200, "duplicate")
                return
            seen.add(event["id"])
            print(json.dumps({"id": event["id"], "type": event["type"]}), flush=True)
            self._answer(204, "")

        def _answer(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # the events printed are the log

    return Handler


def main() -> None:
    """Serve on the port given (default 8400) until interrupted."""
    secret = os.environ.get("EXOSMS_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        sys.exit("set EXOSMS_WEBHOOK_SECRET to the destination's whsec_ secret")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8400
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(secret))
    print(f"listening on http://127.0.0.1:{port}/hook", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
