"""Calendar reminders: a rule that fires on the same dates every year for its audience, such as
the enterprises' annual report (due by 30 June) or the quarterly tax filing period::

    on_calendar:
      dates: ["06-01"]        # MM-DD, every year (LIFECYCLE_TIMEZONE); several for a period each
      at: "09:00"             # the time of day it fires; default 09:00
    recipients:
      audience: {kind: enterprise}

Nothing scans: one entry per rule in the date reminders' queue (``app.state.schedule``, member
``RULE|*``) says when its next date is due. The leader's timer keeps it there (after a rule is
added or changed, within a second) and, when it comes due, publishes one area-wide event,
``calendar.date.due``, planned like any broadcast: its audience from the indexes, in chunks, held
by the blast-radius guard when far larger than the rule's usual. Its id names the rule and the
date, so a date published twice is delivered once; the date sent for is kept, so it goes once a
year. A date is due all day: on the day, after its time, it fires at once (a worker that was down
at 09:00 sends it when it is back); a day gone by unsent is not sent late.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from app.planning.journeys import time_of_day_field, unknown_fields

CALENDAR_KEYS = {"dates", "at"}
CALENDAR_EVENT = "calendar.date.due"
MAX_DATES = 24
_MONTH_DAY = re.compile(r"(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


@dataclass(frozen=True)
class CalendarTrigger:
    dates: tuple[tuple[int, int], ...]  # (month, day), in order
    at: tuple[int, int] = (9, 0)

    @property
    def event_type(self) -> str:
        return CALENDAR_EVENT


def parse_calendar(doc: Any, bad: Any) -> CalendarTrigger | None:
    """An ``on_calendar`` mapping, or None with each problem given to ``bad(field, message)``."""
    if not isinstance(doc, dict):
        bad("on_calendar", 'a mapping: dates (["06-01"]) and optionally at ("09:00")')
        return None
    ok = not unknown_fields(doc, CALENDAR_KEYS, "on_calendar", bad)
    raw = doc.get("dates")
    raw = [raw] if isinstance(raw, str) else raw
    found: set[tuple[int, int]] = set()
    if not isinstance(raw, list) or not raw or len(raw) > MAX_DATES:
        bad("on_calendar.dates", f'1 to {MAX_DATES} dates of the year, "MM-DD" (quoted): ["06-01"]')
        ok = False
    else:
        for i, value in enumerate(raw):
            parsed = _month_day(value)
            if parsed is None:
                bad(
                    f"on_calendar.dates[{i}]",
                    f'"MM-DD", a day of the year, not {str(value)[:20]!r}',
                )
                ok = False
            else:
                found.add(parsed)
    at = time_of_day_field(doc, "on_calendar", bad)
    if not ok or at is None:
        return None
    return CalendarTrigger(tuple(sorted(found)), at)


def _month_day(value: Any) -> tuple[int, int] | None:
    found = _MONTH_DAY.fullmatch(value.strip()) if isinstance(value, str) else None
    if not found:
        return None
    month, day = int(found.group(1)), int(found.group(2))
    try:
        date(2024, month, day)  # a leap year: 02-29 is a day of the year
    except ValueError:
        return None
    return month, day


def _on(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:  # 29 February in a year that has none: the 28th
        return date(year, month, 28)


def next_date(trigger: CalendarTrigger, now: float, tz: ZoneInfo,
              last_sent: str | None) -> tuple[float, str]:  # fmt: skip
    """(when it is due, the date) of the rule's next date: today's when it is one of the dates
    and not sent yet (due at its time, or at once when that has passed), else the next."""
    today = datetime.fromtimestamp(now, tz).date()
    for year in (today.year, today.year + 1):
        for month, day in trigger.dates:
            candidate = _on(year, month, day)
            if candidate < today or candidate.isoformat() == last_sent:
                continue
            fire = datetime.combine(candidate, time(*trigger.at), tz).timestamp()
            return max(fire, now), candidate.isoformat()
    # every date of this year and next was sent or passed: only with one date sent today
    candidate = _on(today.year + 2, *trigger.dates[0])
    return datetime.combine(candidate, time(*trigger.at), tz).timestamp(), candidate.isoformat()


def calendar_event(rule_id: str, day: str, now: float, tz: ZoneInfo) -> dict[str, Any]:
    """The area-wide event a due calendar date is planned from (its id: the rule and date)."""
    return {"id": f"cal:{rule_id}:{day}", "type": CALENDAR_EVENT,
            "occurred_at": datetime.fromtimestamp(now, tz).isoformat(timespec="seconds"),
            "source": "lifecycle-calendar",
            "data": {"rule_id": rule_id, "date": day, "year": int(day[:4])}}  # fmt: skip
