"""ISO 8601 / CAP date-times with a UTC offset, one parser for events and CAP."""

from __future__ import annotations

from datetime import datetime


def aware(value: str) -> datetime:
    """Parse ``value``; ValueError with a reason when it is not a date-time or has no offset."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return moment
