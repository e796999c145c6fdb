"""Reading events from a file (JSON Lines or one JSON array) and publishing the valid ones."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.errors import EventRejected
from app.events import MAX_EVENT_DEPTH, Event, decode_json, parse_event, validate_event

LIFE_EVENTS = "life-events"


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


def publish(bootstrap: list[str], events: Iterable[Event], topic: str = LIFE_EVENTS) -> int:
    """Publish events, keyed by subject (or event id); returns how many the broker acknowledged."""
    records = (
        (e.key.encode("utf-8"), json.dumps(e.as_dict(), ensure_ascii=False).encode("utf-8"))
        for e in events
    )
    return publish_raw(bootstrap, topic, records)


def publish_raw(bootstrap: list[str], topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Publish (key, value) pairs with kafka-python; returns how many the broker acknowledged."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, client_id="lifecycle-publish"
    )
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush()
        for f in futures:
            f.get(timeout=30)
        return len(futures)
    finally:
        producer.close()
