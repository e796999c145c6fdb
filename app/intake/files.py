"""Reading events from a file: JSON Lines or one JSON array, each invalid one reported."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.codec import decode_json
from app.core.errors import EventRejected
from app.intake.events import MAX_EVENT_DEPTH, Event, parse_event, validate_event


@dataclass
class ReadResult:
    events: list[Event] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)


def read_events(data: bytes | str) -> ReadResult:
    """Events from JSON Lines, or from one JSON array; each invalid one with its line and reason.
    A line that is not UTF-8, not JSON or nested too deep is reported, and the rest are read."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    result = ReadResult()
    stripped = raw.removeprefix(b"\xef\xbb\xbf").strip()
    if stripped.startswith(b"["):
        try:
            items = decode_json(stripped, "array of events", MAX_EVENT_DEPTH + 1)
        except EventRejected as exc:
            result.invalid.append(("the array", exc.reason))
            return result
        for number, item in enumerate(items, start=1):
            _add(result, f"item {number}", lambda item=item: validate_event(item))
        return result
    for number, line in enumerate(stripped.splitlines(), start=1):
        if line.strip():
            _add(result, f"line {number}", lambda line=line: parse_event(line))
    return result


def _add(result: ReadResult, where: str, parse: object) -> None:
    try:
        result.events.append(parse())  # type: ignore[operator]
    except EventRejected as exc:
        result.invalid.append((where, exc.reason))
