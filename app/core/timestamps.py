"""ISO 8601 / CAP date-times with a UTC offset, one parser for events and CAP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone


def aware(value: str) -> datetime:
    """Parse ``value``; ValueError with a reason when it is not a date-time or has no offset."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return moment


def local_iso(seconds_from_now: float = 0.0, offset_hours: int = 8) -> str:
    """Now (plus ``seconds_from_now``) as ISO 8601 at a fixed UTC offset, to the second: the
    timestamps the demo, the tests and the benchmarks give their events, which must be recent to
    be acted on (``why_not_act``)."""
    zone = timezone(timedelta(hours=offset_hours))
    return (datetime.now(zone) + timedelta(seconds=seconds_from_now)).isoformat(timespec="seconds")


_last: tuple[int, str] = (-1, "")


def utc_now_ms() -> str:
    """Now in UTC, ISO 8601 to the millisecond (``2026-12-03T10:00:00.123+00:00``), as
    ``datetime.now(UTC).isoformat(timespec="milliseconds")`` gives it; made once per millisecond
    (a batch stamps hundreds of records within one)."""
    global _last
    now = time.time()
    ms = int(now * 1000)
    if ms != _last[0]:
        _last = (ms, datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds"))
    return _last[1]
