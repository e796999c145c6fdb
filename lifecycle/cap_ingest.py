"""`lifecycle cap ingest FILE|URL`: read a CAP 1.2 alert, publish its weather events."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Any

from app.core.settings import Settings
from app.intake.cap import MAX_BYTES, CapRejected, alert_events
from wiring.kafka import publish


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


def ingest(settings: Settings, source: str) -> int:
    try:
        events = alert_events(read_source(source))
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
