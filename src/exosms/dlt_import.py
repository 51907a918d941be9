"""Read DLT portal exports (CSV, XLSX) and TOML template lists into :class:`Template` rows.

Portal exports differ and no public source fixes their column names, so headers are matched
loosely (case, spaces and punctuation ignored) against the spellings seen in the wild.
Only approved rows are imported; every other row is reported with why.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exosms.dlt import Template

# Field -> header spellings (normalised: lower case, letters and digits only), best first.
COLUMNS: dict[str, tuple[str, ...]] = {
    "template_id": (
        "templateid",
        "dlttemplateid",
        "contenttemplateid",
        "ctid",
        "templateidno",
        "tempid",
    ),
    "content": (
        "templatecontent",
        "content",
        "templatemessage",
        "message",
        "templatetext",
        "messagecontent",
        "text",
        "body",
        "template",
    ),
    "name": ("templatename", "name", "contenttemplatename", "title"),
    "entity_id": ("entityid", "peid", "principalentityid", "dltentityid", "peidno"),
    "headers": ("header", "headers", "senderid", "headername", "sender", "headerid"),
    "category": ("templatetype", "category", "type", "templatecategory", "contentcategory"),
    "status": ("status", "templatestatus", "approvalstatus", "state"),
    "url_whitelist": ("urlwhitelist", "whitelistedurls", "urls", "whitelisturl"),
    "cbn_whitelist": ("cbnwhitelist", "callbacknumbers", "whitelistedcbn", "cbn"),
}
APPROVED = {"approved", "active", "approve", "live", "a"}
_ID = re.compile(r"^[0-9]{12,19}$")  # 19 digits in every real example; accept 12 to 19
_LIST_SPLIT = re.compile(r"[,;|\s]+")


class ImportFileError(ValueError):
    """The file cannot be read as templates at all (format, encoding, no usable header)."""


@dataclass
class ImportResult:
    templates: list[Template] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)
    rows: int = 0


def _normalise(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def _columns(header: list[str]) -> dict[str, int]:
    names = [_normalise(h) for h in header]
    found: dict[str, int] = {}
    for key, spellings in COLUMNS.items():
        for spelling in spellings:
            if spelling in names and names.index(spelling) not in found.values():
                found[key] = names.index(spelling)
                break
    return found


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 (with BOM, or without when it is plainly so)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if len(data) > 1 and data.count(b"\x00") > len(data) // 4:
        return data.decode("utf-16-le" if data[1:2] == b"\x00" else "utf-16-be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"not UTF-8 or UTF-16 (byte {error.start}): export the file as UTF-8 CSV"
        ) from None


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(v for v in _LIST_SPLIT.split(value.strip()) if v)


def _row_to_template(values: dict[str, str]) -> tuple[Template | None, str]:
    raw_id = values.get("template_id", "").strip().lstrip("'").strip()
    content = values.get("content", "")
    status = values.get("status", "").strip()
    if not raw_id:
        return None, "no template id"
    if re.fullmatch(r"[0-9.]+[eE]\+?[0-9]+", raw_id):
        return None, f"template id {raw_id!r} is in scientific notation: re-export ids as text"
    if raw_id.endswith(".0") and _ID.match(raw_id[:-2]):
        raw_id = raw_id[:-2]
    if not _ID.match(raw_id):
        return None, f"template id {raw_id!r} is not 12 to 19 digits"
    if not content.strip():
        return None, f"template {raw_id} has no content"
    if status and _normalise(status) not in APPROVED:
        return None, f"template {raw_id} is {status!r}, not approved"
    entity = values.get("entity_id", "").strip().lstrip("'")
    return (
        Template(
            template_id=raw_id,
            content=content,
            entity_id=entity[:-2] if entity.endswith(".0") else entity,
            name=values.get("name", "").strip(),
            headers=_split_list(values.get("headers", "")),
            category=values.get("category", "").strip(),
            status="approved",
            url_whitelist=_split_list(values.get("url_whitelist", "")),
            cbn_whitelist=_split_list(values.get("cbn_whitelist", "")),
        ),
        "",
    )


def _from_rows(rows: Iterator[list[str]], progress: Callable[[int], None] | None) -> ImportResult:
    result = ImportResult()
    columns: dict[str, int] | None = None
    header_line = 0
    for number, row in enumerate(rows, start=1):
        if columns is None:
            found = _columns([str(c or "") for c in row])
            if "template_id" in found and "content" in found:
                columns, header_line = found, number
            elif number >= 10:
                break
            continue
        if not any(str(c or "").strip() for c in row):
            continue
        result.rows += 1
        values = {
            k: (str(row[i]) if i < len(row) and row[i] is not None else "")
            for k, i in columns.items()
        }
        template, reason = _row_to_template(values)
        if template is None:
            result.skipped.append((number, reason))
        else:
            result.templates.append(template)
        if progress is not None:
            progress(1)
    if columns is None:
        wanted = "a template id column and a content column (e.g. TEMPLATE_ID, TEMPLATE_CONTENT)"
        raise ImportFileError(f"no header row found in the first 10 rows: need {wanted}")
    del header_line
    return result


def read_csv(data: bytes, progress: Callable[[int], None] | None = None) -> ImportResult:
    text = decode(data)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return _from_rows(csv.reader(io.StringIO(text, newline=""), dialect), progress)


def read_xlsx(path: Path, progress: Callable[[int], None] | None = None) -> ImportResult:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise ImportFileError("reading .xlsx needs openpyxl") from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:
        raise ImportFileError(f"cannot read {path.name} as XLSX: {error}") from None
    try:
        sheet = book.worksheets[0]
        rows = (
            [("" if c is None else str(c)) for c in row]
            for row in sheet.iter_rows(values_only=True)
        )
        return _from_rows(rows, progress)
    finally:
        book.close()


def read_toml(data: bytes) -> ImportResult:
    """``[[template]]`` tables with ``id`` (or ``template_id``), ``content`` and the rest."""
    try:
        parsed = tomllib.loads(decode(data))
    except tomllib.TOMLDecodeError as error:
        raise ImportFileError(f"not valid TOML: {error}") from None
    entries = parsed.get("template") or parsed.get("templates") or []
    if not isinstance(entries, list):
        raise ImportFileError("expected [[template]] tables")
    result = ImportResult()
    for number, entry in enumerate(entries, start=1):
        result.rows += 1
        if not isinstance(entry, dict):
            result.skipped.append((number, "not a table"))
            continue
        values = {
            "template_id": str(entry.get("id", entry.get("template_id", ""))),
            "content": str(entry.get("content", "")),
            "name": str(entry.get("name", "")),
            "entity_id": str(entry.get("entity_id", "")),
            "headers": " ".join(_as_list(entry.get("headers", entry.get("header", [])))),
            "category": str(entry.get("category", "")),
            "status": str(entry.get("status", "approved")),
            "url_whitelist": " ".join(_as_list(entry.get("url_whitelist", []))),
            "cbn_whitelist": " ".join(_as_list(entry.get("cbn_whitelist", []))),
        }
        template, reason = _row_to_template(values)
        if template is None:
            result.skipped.append((number, reason))
        else:
            result.templates.append(template)
    return result


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def read_templates(path: Path, progress: Callable[[int], None] | None = None) -> ImportResult:
    """Read templates from ``path`` by its extension: .csv/.txt, .xlsx, .toml."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return read_xlsx(path, progress)
    data = path.read_bytes()
    if suffix == ".toml":
        return read_toml(data)
    if suffix in (".csv", ".txt", ".tsv", ""):
        return read_csv(data, progress)
    raise ImportFileError(f"unsupported file type {suffix!r}: use .csv, .xlsx or .toml")


def read_upload(filename: str, data: bytes) -> ImportResult:
    """Read an uploaded export (the inbox's DLT page) by its file name's extension."""
    suffix = Path(filename).suffix.lower()
    if suffix != ".xlsx":
        if suffix == ".toml":
            return read_toml(data)
        if suffix in (".csv", ".txt", ".tsv", ""):
            return read_csv(data)
        raise ImportFileError(f"unsupported file type {suffix!r}: use .csv, .xlsx or .toml")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="exosms-dlt-") as folder:
        path = Path(folder) / "upload.xlsx"
        path.write_bytes(data)
        return read_xlsx(path)  # an ImportFileError names upload.xlsx: a readable reason


def count_lines(path: Path) -> int:
    """A cheap row estimate for a progress bar (CSV only)."""
    if path.suffix.lower() == ".xlsx":
        return 0
    return path.read_bytes().count(b"\n")
