"""`lifecycle cap ingest FILE|URL`: read a CAP 1.2 alert, publish its weather events."""

from __future__ import annotations

import json
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.cap import CapRejected, parse_cap, to_events
from app.errors import EventRejected
from app.events import MAX_EVENT_BYTES, Event, validate_event
from app.settings import Settings
from lifecycle.publish import publish

MAX_BYTES = 2 * 1024 * 1024


def read_source(source: str) -> bytes:
    """At most MAX_BYTES + 1 bytes of ``source`` (a larger document is refused by the parser, and
    /dev/zero or an endless URL are not read without bound)."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=30) as response:  # noqa: S310 - http(s) only
            return _read_bounded(response)
    if source == "-":
        return _read_bounded(sys.stdin.buffer)
    with Path(source).open("rb") as stream:
        return _read_bounded(stream)


def _read_bounded(stream: Any) -> bytes:
    chunks, size = [], 0
    while size <= MAX_BYTES:
        chunk = stream.read(min(65536, MAX_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def cap_events(
    raw: bytes, now: datetime | None = None, *, senders: frozenset[str] | None = None
) -> list[Event]:
    """The validated weather events of one CAP document; CapRejected with the reason otherwise.
    ``senders``: the CAP ``<sender>`` values the caller may speak for (None: the command line,
    run by someone who already holds the service's credentials)."""
    alert = parse_cap(raw)
    if senders is not None and alert.sender not in senders:
        raise CapRejected(f"sender {alert.sender[:100]!r} is not one this token may speak for")
    events = []
    for doc in to_events(alert, now=now or datetime.now(UTC)):
        size = len(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
        if size > MAX_EVENT_BYTES:  # its texts or polygons: the alert is large, the event too
            raise CapRejected(
                f"the alert makes an event of {size} bytes; an event is at most {MAX_EVENT_BYTES}"
            )
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
