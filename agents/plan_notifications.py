"""life-events → notifications: validate each event, select each rule's audience from the indexes,
hold a send whose audience is far above the rule's usual (the blast-radius guard), and plan it:
small audiences here, large ones as chunk commands on `fanout` that any worker plans.

An event that is not valid JSON, of an unknown type or against its schema goes to
life-events-dlq with the reason, and the agent carries on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from faust.types import EventT, StreamT

from agents.common import (
    batches,
    dead_letter,
    publish_plan,
    record_plans,
    refuse_oversized,
    together_or_alone,
    until_available,
)
from app.errors import EventRejected, internal_error
from app.events import Event, parse_event, why_not_act
from app.expressions import ExpressionError
from app.fanout import chunk_commands
from app.planning import Plan
from lifecycle.faust_app import app, runtime
from topics import fanout, life_events, life_events_dlq

logger = logging.getLogger(__name__)
GUARD_SAMPLE = 100  # profiles of a large audience planned to estimate its messages


@app.agent(life_events)
async def plan_notifications(stream: StreamT) -> AsyncIterator[str]:
    async for batch in batches(stream):
        for status in await handle_events(batch):
            yield status


async def handle_events(messages: Sequence[EventT]) -> list[str]:
    """Plan a batch of events, each on its own (one that fails is dead-lettered, the others go
    on), with their subjects' profiles read and their plans recorded in one round trip each."""
    rt = runtime()
    statuses = ["planned"] * len(messages)
    events: list[tuple[int, Event]] = []
    for i, message in enumerate(messages):
        try:
            events.append((i, parse_event(message.value)))
        except EventRejected as exc:
            await dead_letter(life_events_dlq, message, exc.reason)
            statuses[i] = "rejected"
        except Exception as exc:  # whatever the bytes hold, the batch goes on without them
            logger.exception("reading an event failed")
            await dead_letter(life_events_dlq, message, internal_error(exc))
            statuses[i] = "rejected"
    if rejected := statuses.count("rejected"):
        await until_available(partial(rt.state.count, "events", "rejected", rejected))
    try:
        subjects = await until_available(partial(subject_profiles, [e for _, e in events]))
    except Exception:  # e.g. a stored profile that does not decode: each event reads its own
        logger.exception("reading a batch's subject profiles failed")
        subjects = None
    planned: list[tuple[int, Plan, list[tuple[bytes, bytes]], dict[str, bytes]]] = []
    for i, event in events:
        try:
            plan, commands = await until_available(partial(plan_event, event, subjects))
            encoded = refuse_oversized(plan)
            planned.append((i, plan, commands, encoded))
        except Exception as exc:  # a bug must not lose the event: keep it, with the reason
            logger.exception("planning failed for event %s", event.id)
            await dead_letter(life_events_dlq, messages[i], internal_error(exc))
            statuses[i] = "error"
    recorded = await together_or_alone(
        [plan for _, plan, _, _ in planned], record_plans, "recording plans"
    )
    for (i, plan, commands, encoded), failure in zip(planned, recorded, strict=True):
        if failure is not None:
            await dead_letter(life_events_dlq, messages[i], internal_error(failure))
            statuses[i] = "error"
            continue
        for key, value in commands:
            await fanout.send(key=key, value=value)
        await publish_plan(plan, encoded)
        event = plan.event
        logger.log(logging.INFO if commands else logging.DEBUG,
                   "event %s (%s): %d rule(s), %d notification(s) planned, %d chunk(s) to fan out",
                   event.id, event.type, len(plan.matched), len(plan.notifications), len(commands))  # fmt: skip
    if events:
        logger.info("planned %d event(s) into %d notification(s); %d rejected, %d failed",
                    statuses.count("planned"), sum(len(p.notifications) for _, p, _, _ in planned),
                    rejected, statuses.count("error"))  # fmt: skip
    return statuses


async def subject_profiles(events: list[Event]) -> dict[str, dict[str, Any] | None]:
    """The profiles of the events' subjects that a rule addresses, in one read (None: no such)."""
    rules = runtime().rules
    wanted = sorted({e.subject_id for e in events if e.subject_id
                     and any(r.subject for r in rules.for_event(e.type))})  # fmt: skip
    found = {p["id"]: p for p in await runtime().profiles.get_many(wanted)}
    return {profile_id: found.get(profile_id) for profile_id in wanted}


async def plan_event(
    event: Event, subjects: Mapping[str, dict[str, Any] | None] | None = None
) -> tuple[Plan, list[tuple[bytes, bytes]]]:
    rt = runtime()
    planner, guard = rt.planner, rt.guard
    stale = why_not_act(event, datetime.now(UTC), rt.settings.max_event_age_days)
    if stale:
        plan = Plan(event, skipped=[("*", f"suppressed: {stale}")])
        await rt.state.count("events", "suppressed")
        logger.info("event %s (%s) suppressed: %s", event.id, event.type, stale)
        return plan, []
    warning = await planner.warning_context(event)
    plan = Plan(event, warning_root=warning.root if warning else None)
    commands: list[tuple[bytes, bytes]] = []
    for rule in rt.rules.for_event(event.type):
        plan.matched.append(rule.id)
        try:
            ids = await planner.audience(rule, event, warning)
        except ExpressionError as exc:
            plan.skipped.append((rule.id, f"audience: {exc}"))
            continue
        if rule.subject:  # one person or enterprise is never a blast
            await planner.plan_chunk(plan, rule, ids, warning, known=subjects)
            continue
        # Count messages, not profiles: plan a small audience whole, a large one's first profiles
        inline = len(ids) <= rt.settings.fanout_chunk
        scratch = Plan(event, warning_root=plan.warning_root)
        sample = ids if inline else ids[:GUARD_SAMPLE]
        await planner.plan_chunk(scratch, rule, sample, warning, known=subjects)
        messages = len(scratch.notifications)
        if not inline and sample:
            messages = round(messages * len(ids) / len(sample))
        reason = await guard.reason_to_hold(rule.id, messages, rule.version)
        if reason:
            hold_id = await guard.hold(event.as_dict(), rule.id, messages, reason)
            await rt.state.trace(event.id, "held", rule=rule.id, hold=hold_id, reason=reason)
            await rt.state.count("events", "held")
            logger.warning("held %s: %s", hold_id, reason)
            continue
        await guard.record_run(rule.id, messages)
        if inline:
            plan.notifications.extend(scratch.notifications)
            plan.skipped.extend(scratch.skipped)
        else:
            commands.extend(chunk_commands(event, rule.id, ids, rt.settings.fanout_chunk))
            await rt.state.trace(event.id, "fanned out", rule=rule.id, recipients=len(ids))
    return plan, commands
