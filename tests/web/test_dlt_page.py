"""The DLT page over real HTTP: a portal export uploaded (larger than the edge's usual body
limit) with its import report and in force at once; a refused reply kept and grouped by
its closest template with the text to register; bad uploads refused with the reason."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from inbox_support import csrf_of, inbox_server, login

pytestmark = pytest.mark.slow

ORDER = "1107160000000000011"


def portal_csv(extra_rows: int) -> bytes:
    lines = ["Template ID,Template Name,Template Content,Status"]
    lines.append(f'{ORDER},order,"Your order {{#numeric#}} is packed. -ACME",Approved')
    lines.append('1107160000000000012,old,"Sale today only. -ACME",Rejected')
    for n in range(extra_rows):  # a real export is long: well past 64 KiB
        content = f"Notice {n}: your slot {{#var#}} is booked with ACME, see you there. -ACME"
        lines.append(f'{1107170000000000000 + n},notice{n},"{content}",Approved')
    return ("\n".join(lines) + "\n").encode()


def test_upload_an_export_then_see_a_refused_reply_with_what_to_register(tmp_path: Path) -> None:
    # The upload reloads the templates by itself: no waiting on the periodic reload.
    proc = inbox_server(
        tmp_path, "--app", "exosms_test_apps:router", EXOSMS_DLT__RELOAD_SECONDS="60"
    )
    try:
        client = login(proc.url)
        page = client.get("/inbox/dlt").text
        assert 'id="dlt-mode">warn<' in page and "0 approved templates" in page
        token = csrf_of(page)
        export = portal_csv(1500)
        assert len(export) > 100_000
        done = client.post(
            "/inbox/dlt/upload",
            data={"csrf": token},
            files={"file": ("portal-export.csv", export, "text/csv")},
        )
        assert done.status_code == 200, done.text[:300]
        assert (
            "<strong>portal-export.csv</strong>: 1502 rows: 1501 imported, 0 updated,"
            " 0 unchanged, 1 skipped." in done.text
        )
        # the rejected one, and why
        rejected = "row 3: template 1107160000000000012 is &#39;Rejected&#39;, not approved"
        assert rejected in done.text
        assert 'id="dlt-mode">enforce<' in done.text and "1501 approved templates" in done.text

        sid = uuid.uuid4().hex
        params = {
            "SmsSid": sid,
            "From": "9811100088",
            "To": "56070",
            "Body": "ECHO Your order 77 is packed -ACME",
        }
        assert httpx.get(f"{proc.url}/exotel/sms", params=params).text == ""  # refused: no reply
        page = client.get("/inbox/dlt").text
        assert f'data-closest="{ORDER}"' in page
        assert "Your order 77 is packed -ACME" in page
        assert '<code class="register">Your order {#var#} is packed -ACME</code>' in page
        thread = client.get("/inbox/c/+919811100088").text
        assert 'class="bubble refused"' in thread and "Your order 77 is packed -ACME" in thread

        for name, body, reason in (
            ("templates.pdf", b"%PDF", "templates.pdf: unsupported file type &#39;.pdf&#39;"),
            ("broken.xlsx", b"not a workbook", "broken.xlsx: cannot read upload.xlsx as XLSX"),
        ):
            refused = client.post(
                "/inbox/dlt/upload", data={"csrf": token}, files={"file": (name, body)}
            )
            assert refused.status_code == 400
            assert reason in refused.text
        empty = client.post("/inbox/dlt/upload", data={"csrf": token})
        assert empty.status_code == 400 and "Choose a file to import." in empty.text
        no_csrf = client.post("/inbox/dlt/upload", files={"file": ("a.csv", export)})
        assert no_csrf.status_code == 403
        # Elsewhere the edge's usual limit holds: only the upload takes a large body.
        big = client.post("/inbox/try", data={"csrf": token, "body": "x" * 100_000})
        assert big.status_code == 413
    finally:
        proc.stop()
