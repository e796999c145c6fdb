"""life-events → notifications: validate each event, plan who gets what, publish the plan.

An event that is not valid JSON, of an unknown type or against its schema goes to
life-events-dlq with the reason, and the agent carries on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import dead_letter, until_available
from app.errors import EventRejected
from app.events import Event, parse_event
from app.planning import Plan
from lifecycle.faust_app import app, runtime
from topics import lane, life_events, life_events_dlq

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
        plan = await until_available(lambda: plan_and_record(event))
    except Exception as exc:  # a bug must not lose the event: keep it, with the reason
        logger.exception("planning failed for event %s", event.id)
        await dead_letter(life_events_dlq, message, f"internal error: {type(exc).__name__}: {exc}")
        return "error"
    for n in plan.notifications:
        await lane(n.category).send(key=n.recipient.encode(), value=n.to_json())
    logger.info("event %s (%s): %d rule(s) matched, %d notification(s) planned",
                event.id, event.type, len(plan.matched), len(plan.notifications))  # fmt: skip
    return "planned"


async def plan_and_record(event: Event) -> Plan:
    rt = runtime()
    await rt.state.trace(event.id, "received", type=event.type)
    plan = await rt.planner.plan(event)
    await rt.state.planned_many(plan.notifications)
    if plan.warning_root and event.type in ("weather.warning.issued", "weather.warning.updated"):
        warned = {
            (n.recipient, n.profile_id) for n in plan.notifications if n.category == "warning"
        }
        await rt.planner.warned.record(
            plan.warning_root, event.data["warning_id"], event.data["level"], warned
        )
    await rt.state.trace(event.id, "planned", rules=plan.matched,
                         notifications=[n.id for n in plan.notifications],
                         skipped=[f"{r}: {why}" for r, why in plan.skipped][:50])  # fmt: skip
    await rt.state.count("events", "received")
    await rt.state.count("events", "planned", len(plan.notifications))
    return plan
