"""Date-driven reminders: a rule that fires on a profile's own dated fact, not on an event.

A profile may carry dated facts (``dates: {id_card_expiry: 2027-03-01, birth_date: 1946-05-02}``);
a rule names one::

    on_date:
      kind: person            # whose dates: person or enterprise
      fact: id_card_expiry    # the name under the profile's ``dates``
      days: -30               # relative to the date: before (-) or after (+); default 0
      years: 0                # optional: the date's anniversary, e.g. birth_date + 80 years
      at: "09:00"             # the time of day it fires (LIFECYCLE_TIMEZONE); default 09:00

Scheduling follows the profiles, never a scan: when a profile is stored, each date rule of its
kind computes when it is due for that profile and puts it in one sorted set (a renewed permit
moves its entry, a deleted profile or fact removes it). The leader's timer takes what has come
due and publishes an event of the subject, ``person.date.due`` or ``enterprise.date.due``, onto
``life-events``; it is planned there like any event (its rule only: ``data.rule_id``). Its id
names the rule, the profile and the date, so a reminder published twice is delivered once, and
the date it was sent for is kept, so storing the profile again does not send it again.

A reminder whose time has passed while its date has not (a profile stored 10 days before its
card expires, with a rule 30 days before) fires at once; one whose date itself has passed does
not fire.

Keys (under the configured prefix): ``ds:due`` (sorted set: ``rule|profile`` → when),
``ds:sent:{rule}`` (hash: profile → the date it was sent for).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.planning.journeys import time_of_day_field, unknown_fields
from app.profiles.validate import FACT_NAME

DATE_KEYS = {"kind", "fact", "days", "years", "at"}
MAX_DAYS = 3660
MAX_YEARS = 150


@dataclass(frozen=True)
class DateTrigger:
    kind: str
    fact: str
    days: int = 0
    years: int = 0
    at: tuple[int, int] = (9, 0)

    @property
    def event_type(self) -> str:
        return f"{self.kind}.date.due"


def parse_trigger(doc: Any, bad: Any) -> DateTrigger | None:
    """An ``on_date`` mapping, or None with each problem given to ``bad(field, message)``."""
    if not isinstance(doc, dict):
        bad("on_date", "a mapping: kind, fact, and optionally days, years, at")
        return None
    ok = not unknown_fields(doc, DATE_KEYS, "on_date", bad)
    kind = doc.get("kind")
    if kind not in ("person", "enterprise"):
        bad("on_date.kind", "required: person or enterprise (whose dates)")
        ok = False
    fact = doc.get("fact")
    if not isinstance(fact, str) or not FACT_NAME.fullmatch(fact):
        bad("on_date.fact", "required: the dated fact's name on the profile, e.g. id_card_expiry")
        ok = False
    days, years = doc.get("days", 0), doc.get("years", 0)
    if not isinstance(days, int) or isinstance(days, bool) or abs(days) > MAX_DAYS:
        bad("on_date.days", f"a whole number of days, -{MAX_DAYS} to {MAX_DAYS}")
        ok = False
    if not isinstance(years, int) or isinstance(years, bool) or not 0 <= years <= MAX_YEARS:
        bad("on_date.years", f"a whole number of years, 0 to {MAX_YEARS}")
        ok = False
    at = time_of_day_field(doc, "on_date", bad)
    if not ok or at is None:
        return None
    return DateTrigger(str(kind), str(fact), int(days), int(years), at)


def anchor(trigger: DateTrigger, fact: date) -> date:
    """The day the trigger counts from: the fact, or its anniversary ``years`` on."""
    if not trigger.years:
        return fact
    try:
        return fact.replace(year=fact.year + trigger.years)
    except ValueError:  # 29 February in a year that has none
        return fact.replace(year=fact.year + trigger.years, day=28)


def due_at(trigger: DateTrigger, dates: dict[str, str] | None, now: float,
           tz: ZoneInfo) -> tuple[float, str] | None:  # fmt: skip
    """(when the reminder is due, the date it is for) for a profile's dates; None when the
    profile has no such fact or the date itself has passed."""
    raw = (dates or {}).get(trigger.fact)
    if not raw:
        return None
    try:
        day = anchor(trigger, date.fromisoformat(raw))
    except (ValueError, OverflowError):
        return None
    today = datetime.fromtimestamp(now, tz).date()
    if day < today:
        return None
    fire = datetime.combine(day + timedelta(days=trigger.days), time(*trigger.at), tz)
    return max(fire.timestamp(), now), day.isoformat()


def date_event_id(rule_id: str, profile_id: str, day: str) -> str:
    """The same rule, profile and date always give the same event (an event id allows
    letters, digits and ``._:-``, at most 128)."""
    plain = f"date:{rule_id}:{profile_id}:{day}"
    if len(plain) <= 128:
        return plain
    return "date:" + hashlib.sha256(plain.encode()).hexdigest()


def date_event(trigger: DateTrigger, rule_id: str, profile: dict[str, Any], day: str,
               now: float, tz: ZoneInfo) -> dict[str, Any]:  # fmt: skip
    """The event a due reminder is planned from."""
    return {"id": date_event_id(rule_id, profile["id"], day), "type": trigger.event_type,
            "occurred_at": datetime.fromtimestamp(now, tz).isoformat(timespec="seconds"),
            "source": "lifecycle-dates", "subject": {"kind": trigger.kind, "id": profile["id"]},
            "district": profile.get("district") or "000000",
            "data": {"rule_id": rule_id, "fact": trigger.fact, "date": day,
                     "days": trigger.days, "years": trigger.years}}  # fmt: skip
