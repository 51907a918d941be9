"""Importing DLT portal exports: CSV (BOM, UTF-16, odd headers), XLSX and TOML."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from exosms.dlt_import import ImportFileError, read_templates

STATUSES = ["Approved", "Rejected", "Approved", "Pending", "approved", "Inactive", "Active"]
APPROVED = {"Approved", "approved", "Active"}


def portal_rows(count: int) -> list[list[str]]:
    header = [
        " Template Id ",
        "Template Name",
        "Template Message",
        "Header",
        "Entity ID",
        "Template Status",
    ]
    rows = [header]
    for n in range(count):
        status = STATUSES[n % len(STATUSES)]
        rows.append(
            [
                f"1107{n:015d}",
                f"tpl_{n}",
                f"Dear {{#var#}}, order {{#numeric#}} number {n} is ready. -ACME",
                "ACMEIN",
                "1101234567890123456",
                status,
            ]
        )
    return rows


def to_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def expected_approved(count: int) -> int:
    return sum(1 for n in range(count) if STATUSES[n % len(STATUSES)] in APPROVED)


def test_a_5000_row_export_with_a_bom_and_odd_headers(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + to_csv(portal_rows(5000)).encode("utf-8"))
    result = read_templates(path)
    assert result.rows == 5000
    assert len(result.templates) == expected_approved(5000)
    assert len(result.skipped) == 5000 - expected_approved(5000)
    assert result.skipped[0] == (3, "template 1107000000000000001 is 'Rejected', not approved")
    first = result.templates[0]
    assert (first.template_id, first.name, first.headers, first.entity_id) == (
        "1107000000000000000",
        "tpl_0",
        ("ACMEIN",),
        "1101234567890123456",
    )


def test_utf16_gives_the_same_result(tmp_path: Path) -> None:
    text = to_csv(portal_rows(500))
    (tmp_path / "a.csv").write_bytes(text.encode("utf-8"))
    (tmp_path / "b.csv").write_bytes(text.encode("utf-16"))  # with BOM, as Excel writes it
    (tmp_path / "c.csv").write_bytes(text.encode("utf-16-le"))  # without BOM
    a, b, c = (read_templates(tmp_path / n) for n in ("a.csv", "b.csv", "c.csv"))
    assert a.templates == b.templates == c.templates
    assert a.skipped == b.skipped == c.skipped


def test_aggregator_export_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "agg.csv"
    path.write_text(
        "TEMPLATE_ID;TEMPLATE_NAME;TEMPLATE_CONTENT;VARIABLE_COUNT;HEADER\n"
        "1107161234567890123;otp;Your OTP is {#numeric#}. -ACME;1;ACMEIN\n"
        "1.10716E+18;bad;Excel ate the id;0;ACMEIN\n"
        "1107161234567890124;empty;;0;ACMEIN\n",
        encoding="utf-8",
    )
    result = read_templates(path)
    assert [t.template_id for t in result.templates] == ["1107161234567890123"]
    assert [reason for _, reason in result.skipped] == [
        "template id '1.10716E+18' is in scientific notation: re-export ids as text",
        "template 1107161234567890124 has no content",
    ]


def test_xlsx(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Portal export, generated 2026-11-26"])  # a title row above the header
    for row in portal_rows(50):
        sheet.append(row)
    book.save(tmp_path / "export.xlsx")
    result = read_templates(tmp_path / "export.xlsx")
    assert len(result.templates) == expected_approved(50)
    assert result.templates[0].content.startswith("Dear {#var#}")


def test_toml(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text(
        '[[template]]\nid = "1107161234567890123"\nname = "shipped"\n'
        'content = "Order {#numeric#} shipped. -ACME"\nurl_whitelist = ["https://acme.in/"]\n'
        '[[template]]\nid = "1107161234567890124"\ncontent = "x"\nstatus = "rejected"\n',
        encoding="utf-8",
    )
    result = read_templates(path)
    assert [t.name for t in result.templates] == ["shipped"]
    assert result.templates[0].url_whitelist == ("https://acme.in/",)
    assert len(result.skipped) == 1


def test_files_that_are_not_exports_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ImportFileError, match="no header row"):
        read_templates(path)
    path.write_bytes(b"TEMPLATE_ID,TEMPLATE_CONTENT\n\xff\xfe\xfa,x\n")
    with pytest.raises(ImportFileError, match="not UTF-8 or UTF-16"):
        read_templates(path)


def test_cli_import_counts_and_reimport_updates_without_duplicates(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + to_csv(portal_rows(5000)).encode("utf-8"))

    def exosms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "exosms", *args, "--database", db],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )

    approved = expected_approved(5000)
    done = exosms("dlt", "import", str(path))
    assert done.returncode == 0, done.stderr
    assert (
        f"5000 rows: {approved} imported, 0 updated, 0 unchanged, {5000 - approved} skipped"
        in done.stdout
    )
    rows = portal_rows(5000)
    rows[1][2] = "Dear {#var#}, order {#numeric#} is now different. -ACME"
    path.write_text(to_csv(rows), encoding="utf-8")
    done = exosms("dlt", "import", str(path))
    assert f"0 imported, 1 updated, {approved - 1} unchanged" in done.stdout
    listed = exosms("dlt", "list")
    assert f"{approved} approved template(s)" in listed.stdout
    check = exosms("dlt", "check", "Dear Ravi, order 12 is now different. -ACME", "--json")
    assert check.returncode == 0
    assert '"template_id": "1107000000000000000"' in check.stdout
    miss = exosms("dlt", "check", "Dear Ravi, order 12 number 7 is ready -ACME")
    assert miss.returncode == 1
    assert (
        "closest is 1107000000000000007: differs at character 38: expected '.', got ' '"
        in miss.stdout
    )
