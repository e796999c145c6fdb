"""`lifecycle cap ingest FILE|URL`: read a CAP 1.2 alert, publish its weather events."""

from __future__ import annotations

import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from app.cap import CapRejected, parse_cap, to_events
from app.errors import EventRejected
from app.events import Event, validate_event
from app.settings import Settings
from lifecycle.publish import publish

MAX_BYTES = 2 * 1024 * 1024


def read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=30) as response:  # noqa: S310 - http(s) only
            return bytes(response.read(MAX_BYTES + 1))
    if source == "-":
        return sys.stdin.buffer.read(MAX_BYTES + 1)
    return Path(source).read_bytes()


def cap_events(raw: bytes, now: datetime | None = None) -> list[Event]:
    """The validated weather events of one CAP document; CapRejected with the reason otherwise."""
    alert = parse_cap(raw)
    events = []
    for doc in to_events(alert, now=now or datetime.now(UTC)):
        try:
            events.append(validate_event(doc))
        except EventRejected as exc:
            raise CapRejected(f"the alert does not make a valid event: {exc.reason}") from exc
    return events


def ingest(settings: Settings, source: str) -> int:
    try:
        events = cap_events(read_source(source))
    except CapRejected as exc:
        print(f"{source}: refused: {exc.reason}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{source}: cannot read: {exc}", file=sys.stderr)
        return 1
    publish(settings.kafka_servers, events)
    for event in events:
        data = event.data
        where = (
            ", ".join(data.get("areas") or [])
            or f"{len(data.get('polygons', []))} polygon(s), {len(data.get('circles', []))} circle(s)"
        )
        print(
            f"published {event.type} {data['warning_id']}: {data['kind']} {data['level']} — {where}"
        )
    return 0
