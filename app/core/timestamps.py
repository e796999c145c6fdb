"""ISO 8601 / CAP date-times with a UTC offset, one parser for events and CAP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


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
