"""Journeys as planning sees them: started with a rule's first message (or held out), ended by a
completion event, each written with its outcome and its trace steps in the batch that records the
plan (``app.planning.journeys`` says what a journey is; ``app.state.journeys`` and
``app.state.outcomes`` keep them)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from app.planning.journeys import (
    JOURNEY_TTL_SECONDS,
    encode_event,
    in_holdout,
    journey_id,
    next_due,
)
from app.planning.model import Rule
from app.planning.plan import JourneyCompletion, JourneyStart, Plan
from app.state import DeliveryState, Writes
from app.state.journeys import JourneyStore
from app.state.outcomes import OutcomeStore


class Followups:
    def __init__(self, redis: aioredis.Redis, prefix: str, tz: ZoneInfo) -> None:
        self.tz = tz
        self.journeys = JourneyStore(redis, prefix)
        self.outcomes = OutcomeStore(redis, prefix)

    def start(self, plan: Plan, rule: Rule, before: int) -> None:
        """The subject's journey on ``rule``, whose first notifications are ``plan``'s from
        ``before`` on. A subject in the rule's holdout is sent none of them (nor follow-ups):
        its journey only waits for the completion, to compare with."""
        assert rule.follow_up is not None and plan.event.subject_id is not None
        subject, follow_up = plan.event.subject_id, rule.follow_up
        journey = journey_id(rule.id, plan.event.id, subject)
        if in_holdout(rule.id, subject, follow_up.holdout):
            del plan.notifications[before:]
            plan.skipped.append((rule.id, f"holdout: {subject} is among the {follow_up.holdout:.0%} "
                                          "not reminded, to measure what reminding changes"))  # fmt: skip
            plan.journeys.append(JourneyStart(journey, rule, subject, None, "holdout"))
            return
        first = next_due(time.time(), follow_up.steps[0], self.tz) if follow_up.steps else None
        plan.journeys.append(JourneyStart(journey, rule, subject, first))

    async def find_completions(self, plans: Sequence[Plan]) -> None:
        """The journeys each completion event ends, with what their outcome needs: those
        waiting in Redis, and those an earlier event of the same batch starts (its start is
        written with this batch, not before)."""
        started: dict[tuple[str, str], list[JourneyCompletion]] = {}
        for plan in plans:
            event = plan.event
            if plan.completes and event.subject_id:
                waiting = await self.journeys.waiting(event.type, event.subject_id)
                found = {c.journey: c for c in started.get((event.type, event.subject_id), [])}
                for journey in waiting:
                    if journey not in found:
                        record = await self.journeys.journey(journey)
                        found[journey] = JourneyCompletion.of(journey, record)
                plan.completions = [found[j] for j in sorted(found)]
            for start in plan.journeys:
                for stop_type in start.rule.follow_up.stop_on if start.rule.follow_up else ():
                    started.setdefault((stop_type, start.subject), []).append(JourneyCompletion(
                        start.journey, start.rule.id, str(start.rule.version), start.group,
                        event.occurred_at.timestamp(), "active"))  # fmt: skip

    def add(self, writes: Writes, plan: Plan, state: DeliveryState,
            steps: list[tuple[str, dict[str, Any]]] | None = None) -> None:  # fmt: skip
        """The journeys a plan starts and completes, with their outcomes and trace steps: added
        to ``steps`` when given (the event's own note, written with them in one RPUSH), else as
        a note of their own."""
        event = plan.event
        trace: list[tuple[str, dict[str, Any]]] = [] if steps is None else steps
        origin_at = event.occurred_at.timestamp()
        for start in plan.journeys:
            assert start.rule.follow_up is not None
            fields = {"rule": start.rule.id, "version": str(start.rule.version),
                      "group": start.group, "event": encode_event(event.as_dict()),
                      "subject": start.subject, "started_at": f"{time.time():.3f}",
                      "origin_at": f"{origin_at:.3f}"}  # fmt: skip
            status = "active" if start.due is not None else start.group.replace("reminded", "done")
            self.journeys.add_start(writes, start.journey, fields, start.due,
                                    start.rule.follow_up.stop_on, start.subject,
                                    JOURNEY_TTL_SECONDS, status=status)  # fmt: skip
            self.outcomes.add_start(writes, journey=start.journey, rule=start.rule.id,
                                    version=start.rule.version, group=start.group,
                                    started=origin_at,
                                    window_seconds=start.rule.follow_up.window_seconds)  # fmt: skip
            first = (datetime.fromtimestamp(start.due, UTC).isoformat(timespec="seconds")
                     if start.due is not None else None)  # fmt: skip
            trace.append(("journey started", {
                "journey": start.journey, "rule": start.rule.id, "group": start.group,
                "first_follow_up": first, "stops_on": list(start.rule.follow_up.stop_on)}))  # fmt: skip
        for done in plan.completions:
            self.journeys.add_completion(writes, done.journey, f"{origin_at:.3f}", event.id,
                                         event.type, event.subject_id or "")  # fmt: skip
            if done.counts:
                self.outcomes.add_completion(writes, journey=done.journey, rule=done.rule,
                                             version=done.version, group=done.group,
                                             started=done.started, completed=origin_at)  # fmt: skip
        if plan.completions:
            trace.append(("journeys completed", {
                "journeys": [c.journey for c in plan.completions][:50]}))  # fmt: skip
        if steps is None and trace:
            state.add_note(writes, event.id, trace, {})
