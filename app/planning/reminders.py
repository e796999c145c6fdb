"""Reminders that no event triggers: a profile's dated facts (``app.planning.dates``) and dates
of the year (``app.planning.calendar``), kept in one queue (``app.state.schedule``) as profiles are
written and rules change, and taken by the leader when they come due.

The planner holds one (``Planner.dated``); it reads the planner's rules as they are now."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from app.planning.calendar import calendar_event, next_date
from app.planning.dates import date_event, due_at
from app.planning.model import Rule, RuleSet
from app.profiles.model import Profile
from app.profiles.store import ProfileStore
from app.state.schedule import CALENDAR_MEMBER, DateSchedule
from app.state.writes import Writes


class DateReminders:
    def __init__(self, store: ProfileStore, tz: ZoneInfo, rules: Callable[[], RuleSet]) -> None:
        self.store = store
        self.tz = tz
        self.rules = rules  # the rules live now
        self.queue = DateSchedule(store.redis, store.prefix)

    async def schedule(self, written: Sequence[tuple[str, Profile | None]]) -> None:
        """Put each written profile's date reminders on the schedule, move them, or take them
        off (a deleted profile, a fact removed, a date passed, a reminder already sent for that
        date): one round trip for the batch, plus one to read what was sent."""
        now = time.time()
        pending: list[tuple[Rule, str, float, str]] = []
        writes = Writes()
        for profile_id, profile in written:
            for kind in ("person", "enterprise"):
                for rule in self.rules().date_rules(kind):
                    assert rule.on_date is not None
                    found = due_at(rule.on_date, profile.get("dates"), now, self.tz) if (
                        profile is not None and profile.get("kind") == kind) else None  # fmt: skip
                    if found is None:
                        self.queue.add_removal(writes, rule.id, profile_id)
                    else:
                        pending.append((rule, profile_id, *found))
        sent = await self.queue.sent_for([(r.id, p) for r, p, _, _ in pending])
        for (rule, profile_id, due, day), already in zip(pending, sent, strict=True):
            if already == day:
                self.queue.add_removal(writes, rule.id, profile_id)
            else:
                self.queue.add_due(writes, rule.id, profile_id, due)
        await self.queue.apply(writes)

    async def schedule_calendar(self, now: float) -> None:
        """Keep each calendar rule's next date in the queue (the leader, every tick: a rule
        added, changed or just sent is scheduled within a second)."""
        rules = self.rules().calendar_rules()
        if not rules:
            return
        sent = await self.queue.sent_for([(r.id, CALENDAR_MEMBER) for r in rules])
        writes = Writes()
        for rule, last in zip(rules, sent, strict=True):
            assert rule.on_calendar is not None
            due, _ = next_date(rule.on_calendar, now, self.tz, last)
            self.queue.add_due(writes, rule.id, CALENDAR_MEMBER, due)
        await self.queue.apply(writes)

    def _calendar_event(self, rule_id: str, already: str | None, now: float
                        ) -> dict[str, Any] | None:  # fmt: skip
        rule = self.rules().get(rule_id)
        if rule is None or not rule.enabled or rule.on_calendar is None:
            return None
        due, day = next_date(rule.on_calendar, now, self.tz, already)
        return calendar_event(rule_id, day, now, self.tz) if due <= now + 1 else None

    async def due_events(self, now: float, limit: int = 500
                              ) -> list[tuple[str, str, dict[str, Any] | None]]:  # fmt: skip
        """The date reminders due by ``now``: (rule, profile, the event to publish), the event
        None when there is nothing to send any more (the caller drops the entry). A calendar
        rule's entry has the profile ``*`` and an area-wide event."""
        due = await self.queue.due(now, limit)
        profiles = {p["id"]: p for p in await self.store.get_many(
            sorted({p for _, p in due if p != CALENDAR_MEMBER}))}  # fmt: skip
        out: list[tuple[str, str, dict[str, Any] | None]] = []
        sent = await self.queue.sent_for(due)
        for (rule_id, profile_id), already in zip(due, sent, strict=True):
            if profile_id == CALENDAR_MEMBER:
                out.append((rule_id, profile_id, self._calendar_event(rule_id, already, now)))
                continue
            rule, profile = self.rules().get(rule_id), profiles.get(profile_id)
            found = None
            if (
                rule is not None
                and rule.enabled
                and rule.on_date
                and profile is not None
                and profile.get("kind") == rule.on_date.kind
            ):
                found = due_at(rule.on_date, profile.get("dates"), now, self.tz)
            if (
                rule is None
                or rule.on_date is None
                or profile is None
                or found is None
                or found[1] == already
            ):
                out.append((rule_id, profile_id, None))
                continue
            out.append((rule_id, profile_id, date_event(rule.on_date, rule_id, dict(profile),
                                                        found[1], now, self.tz)))  # fmt: skip
        return out
