"""life-events → notifications: validate each event, select each rule's audience from the indexes,
hold a send whose audience is far above the rule's usual (the blast-radius guard), and plan it:
small audiences here, large ones as chunk commands on `fanout` that any worker plans.

An event that is not valid JSON, of an unknown type or against its schema goes to
life-events-dlq with the reason, and the agent carries on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from typing import Any

from faust.types import EventT, StreamT

from agents.common import batches, dead_letter, publish_plan, record_plans, until_available
from app.errors import EventRejected
from app.events import Event, parse_event
from app.expressions import ExpressionError
from app.fanout import chunk_commands
from app.planning import Plan
from lifecycle.faust_app import app, runtime
from topics import fanout, life_events, life_events_dlq

logger = logging.getLogger(__name__)


@app.agent(life_events)
async def plan_notifications(stream: StreamT) -> AsyncIterator[str]:
    async for batch in batches(stream):
        for status in await handle_events(batch):
            yield status


async def handle_events(messages: Sequence[EventT]) -> list[str]:
    """Plan a batch of events, each on its own (one that fails is dead-lettered, the others go
    on), with their subjects' profiles read and their plans recorded in one round trip each."""
    rt = runtime()
    statuses: list[str] = []
    events: list[tuple[int, EventT, Event]] = []
    for message in messages:
        try:
            events.append((len(statuses), message, parse_event(message.value)))
            statuses.append("planned")
        except EventRejected as exc:
            await dead_letter(life_events_dlq, message, exc.reason)
            statuses.append("rejected")
    if rejected := statuses.count("rejected"):
        await until_available(partial(rt.state.count, "events", "rejected", rejected))
    subjects = await until_available(partial(subject_profiles, [e for _, _, e in events]))
    planned: list[tuple[Plan, list[tuple[bytes, bytes]]]] = []
    for i, message, event in events:
        try:
            planned.append(await until_available(partial(plan_event, event, subjects)))
        except Exception as exc:  # a bug must not lose the event: keep it, with the reason
            logger.exception("planning failed for event %s", event.id)
            await dead_letter(
                life_events_dlq, message, f"internal error: {type(exc).__name__}: {exc}"
            )
            statuses[i] = "error"
    await until_available(partial(record_plans, [plan for plan, _ in planned]))
    for plan, commands in planned:
        for key, value in commands:
            await fanout.send(key=key, value=value)
        await publish_plan(plan)
        event = plan.event
        logger.log(logging.INFO if commands else logging.DEBUG,
                   "event %s (%s): %d rule(s), %d notification(s) planned, %d chunk(s) to fan out",
                   event.id, event.type, len(plan.matched), len(plan.notifications), len(commands))  # fmt: skip
    if planned:
        logger.info("planned %d event(s) into %d notification(s); %d rejected",
                    len(planned), sum(len(p.notifications) for p, _ in planned), rejected)  # fmt: skip
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
        reason = None if rule.subject else await guard.reason_to_hold(rule.id, len(ids))
        if reason:
            hold_id = await guard.hold(event.as_dict(), rule.id, len(ids), reason)
            await rt.state.trace(event.id, "held", rule=rule.id, hold=hold_id, reason=reason)
            await rt.state.count("events", "held")
            logger.warning("held %s: %s", hold_id, reason)
            continue
        if not rule.subject:  # one person or enterprise is never a blast
            await guard.record_run(rule.id, len(ids))
        if len(ids) <= rt.settings.fanout_chunk:
            await planner.plan_chunk(plan, rule, ids, warning, known=subjects)
        else:
            commands.extend(chunk_commands(event, rule.id, ids, rt.settings.fanout_chunk))
            await rt.state.trace(event.id, "fanned out", rule=rule.id, recipients=len(ids))
    return plan, commands
