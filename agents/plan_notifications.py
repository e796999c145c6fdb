"""life-events → notifications: validate each event, select each rule's audience from the indexes,
hold a send whose audience is far above the rule's usual (the blast-radius guard), and plan it:
small audiences here, large ones as chunk commands on `fanout` that any worker plans.

An event that is not valid JSON, of an unknown type or against its schema goes to
life-events-dlq with the reason, and the agent carries on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import dead_letter, publish_plan, record_plan, until_available
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
    async for message in stream.events():
        yield await handle_event(message)


async def handle_event(message: EventT) -> str:
    state = runtime().state
    try:
        event = parse_event(message.value)
    except EventRejected as exc:
        await dead_letter(life_events_dlq, message, exc.reason)
        await until_available(lambda: state.count("events", "rejected"))
        return "rejected"
    try:
        plan, commands = await until_available(lambda: plan_event(event))
    except Exception as exc:  # a bug must not lose the event: keep it, with the reason
        logger.exception("planning failed for event %s", event.id)
        await dead_letter(life_events_dlq, message, f"internal error: {type(exc).__name__}: {exc}")
        return "error"
    for key, value in commands:
        await fanout.send(key=key, value=value)
    await publish_plan(plan)
    logger.info("event %s (%s): %d rule(s), %d notification(s) planned, %d chunk(s) to fan out",
                event.id, event.type, len(plan.matched), len(plan.notifications), len(commands))  # fmt: skip
    return "planned"


async def plan_event(event: Event) -> tuple[Plan, list[tuple[bytes, bytes]]]:
    rt = runtime()
    received = ("received", {"type": event.type})
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
            await planner.plan_chunk(plan, rule, ids, warning)
        else:
            commands.extend(chunk_commands(event, rule.id, ids, rt.settings.fanout_chunk))
            await rt.state.trace(event.id, "fanned out", rule=rule.id, recipients=len(ids))
    await record_plan(plan, first_steps=[received], received=1)
    return plan, commands
