"""Contacts: a name per customer number, edited in the inbox or imported from a CSV file,
shown instead of the bare number and found by search."""

from __future__ import annotations

import csv
import io
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from exosms.numbers import is_phone_number, normalise
from exosms.store.textsql import execute, fetch_all

MAX_NAME = 100


class ContactError(ValueError):
    """A name or number that cannot be kept; the message says why, in one line."""


def clean_name(value: str) -> str:
    """A name as kept: spaces collapsed, no control characters, at most 100 characters."""
    name = " ".join("".join(c for c in value if unicodedata.category(c)[0] != "C").split())
    if len(name) > MAX_NAME:
        raise ContactError(f"a name has at most {MAX_NAME} characters")
    return name


@dataclass(slots=True)
class ImportReport:
    """What a CSV import did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


class Contacts:
    """The contacts table, over the store's async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Over the store's engine."""
        self.engine = engine

    async def names(self, numbers: Iterable[str]) -> dict[str, str]:
        """The name of each of ``numbers`` that has one."""
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        marks = ", ".join(f":n{i}" for i in range(len(wanted)))
        rows = await fetch_all(
            self.engine,
            f"SELECT number, name FROM contacts WHERE number IN ({marks})",  # noqa: S608
            **{f"n{i}": number for i, number in enumerate(wanted)},
        )
        return {str(number): str(name) for number, name in rows}

    async def set(self, number: str, name: str, by: str | None) -> str:
        """Name ``number`` (an empty name removes it): ``added``, ``updated``, ``removed``, or
        ``""`` when nothing changed."""
        cleaned = clean_name(name)
        if not cleaned:
            gone = await execute(self.engine, "DELETE FROM contacts WHERE number = :n", n=number)
            return "removed" if gone else ""
        current = await self.names([number])
        if current.get(number) == cleaned:
            return ""
        statement = (
            "UPDATE contacts SET name = :name, updated_at = :now, updated_by = :by"
            " WHERE number = :n"
            if number in current
            else "INSERT INTO contacts (number, name, updated_at, updated_by)"
            " VALUES (:n, :name, :now, :by)"
        )
        await execute(self.engine, statement, n=number, name=cleaned, now=time.time(), by=by)
        return "updated" if number in current else "added"

    async def all(self, limit: int = 100_000) -> list[tuple[str, str]]:
        """Every contact, by name."""
        rows = await fetch_all(
            self.engine, "SELECT number, name FROM contacts ORDER BY name LIMIT :l", l=limit
        )
        return [(str(number), str(name)) for number, name in rows]

    async def import_csv(self, data: bytes, by: str | None) -> ImportReport:
        """Rows of ``number,name`` (a header line is fine, in any order of the two)."""
        report = ImportReport()
        for line, number, name in _rows(data, report):
            try:
                changed = await self.set(number, name, by)
            except ContactError as error:
                report.skipped.append((line, str(error)))
                continue
            if changed == "added":
                report.added += 1
            elif changed == "updated":
                report.updated += 1
            else:
                report.unchanged += 1
        return report


def _rows(data: bytes, report: ImportReport) -> Iterable[tuple[int, str, str]]:
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    columns: Sequence[int] = (0, 1)
    for line, row in enumerate(reader, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        lowered = [cell.lower() for cell in cells]
        if line == 1 and ("number" in lowered or "phone" in lowered or "mobile" in lowered):
            number_at = next(i for i, c in enumerate(lowered) if c in ("number", "phone", "mobile"))
            name_at = next((i for i, c in enumerate(lowered) if c == "name"), 1 - number_at)
            columns = (number_at, name_at)
            continue
        if len(cells) <= max(columns):
            report.skipped.append((line, "expected a number and a name"))
            continue
        number = normalise(cells[columns[0]])
        if not is_phone_number(number):
            report.skipped.append((line, f"{cells[columns[0]]!r} is not a phone number"))
            continue
        yield line, number, cells[columns[1]]
