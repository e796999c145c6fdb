"""``lifecycle profiles import``: JSON Lines or CSV into the profile store.

Good rows are stored even when others are rejected; every rejected row is reported with its
line number and reason. Running the same file twice changes nothing (the second run reports
every row as unchanged).

CSV columns: ``id, kind, name, district, language, mobile, email, tags, industry, permits,
credit_code`` (lists separated by ``;``) and enterprise contacts either as numbered columns
``contact1_role, contact1_name, contact1_mobile, contact1_email, contact2_role, …`` or as one
``contacts`` column holding a JSON list.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.codec import decode_json
from app.core.errors import EventRejected, ProfileRejected
from app.profiles.store import ProfileStore
from app.profiles.validate import MAX_PROFILE_DEPTH, parse_profile

_CONTACT_COLUMN = re.compile(r"contact(\d+)_(role|name|mobile|email)")


@dataclass
class ImportReport:
    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        c = self.counts
        return (
            f"inserted {c['inserted']}, updated {c['updated']}, unchanged {c['unchanged']}, "
            f"rejected {len(self.rejected)}"
        )


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded row or an exception) for every row of a .jsonl/.json or .csv file."""
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(path.read_bytes().decode("utf-8-sig", "replace"))
    else:
        yield from _jsonl_rows(path.read_bytes())


def _jsonl_rows(data: bytes) -> Iterator[tuple[int, Any]]:
    """Each line on its own: one that is not UTF-8, not JSON or nested too deep is reported with
    its number and the reason, and the lines after it are read all the same."""
    for number, line in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, decode_json(line, "profile", MAX_PROFILE_DEPTH)
        except EventRejected as exc:
            yield number, ProfileRejected(exc.reason)


def _csv_rows(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        try:
            yield reader.line_num, _from_csv(row)
        except ProfileRejected as exc:
            yield reader.line_num, exc


def _from_csv(row: dict[str, str | None]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    contacts: dict[int, dict[str, str]] = {}
    for column, value in row.items():
        if column is None or value in (None, ""):
            continue
        column = column.strip()
        match = _CONTACT_COLUMN.fullmatch(column)
        if match:
            contacts.setdefault(int(match[1]), {})[match[2]] = value.strip()
        elif column == "contacts":
            try:  # bounded as any JSON from outside: depth, digits, half characters
                doc["contacts"] = decode_json(value.encode("utf-8", "surrogatepass"), "contacts",
                                              MAX_PROFILE_DEPTH)  # fmt: skip
            except EventRejected as exc:
                raise ProfileRejected(f"contacts: {exc.reason}") from exc
        else:
            doc[column] = value.strip()
    if contacts:
        doc.setdefault("contacts", []).extend(contacts[i] for i in sorted(contacts))
    return doc


async def import_profiles(store: ProfileStore, path: Path) -> ImportReport:
    report = ImportReport()
    for number, row in read_rows(path):
        try:
            if isinstance(row, ProfileRejected):
                raise row
            outcome = await store.upsert(parse_profile(row))
        except ProfileRejected as exc:
            report.rejected.append((number, exc.reason))
            continue
        report.counts[outcome] += 1
    return report
