"""fanout → notifications: plan one chunk of a large audience. Any worker takes any chunk."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import (
    dead_letter,
    publish_plan,
    record_plans,
    refuse_oversized,
    until_available,
)
from app.errors import EventRejected, internal_error
from app.events import validate_event
from app.fanout import read_command
from app.planning import Plan
from lifecycle.faust_app import app, runtime
from topics import fanout, life_events_dlq

logger = logging.getLogger(__name__)


@app.agent(fanout)
async def plan_chunk(stream: StreamT) -> AsyncIterator[str]:
    async for message in stream.events():
        yield await handle_chunk(message)


async def handle_chunk(message: EventT) -> str:
    rt = runtime()
    try:
        command = read_command(message.value)
        event = validate_event(command["event"])
    except (ValueError, EventRejected, KeyError, TypeError, RecursionError) as exc:
        await dead_letter(life_events_dlq, message, f"unreadable chunk command: {exc}")
        return "unreadable"
    rule = rt.rules.get(command["rule_id"])
    if rule is None:
        await dead_letter(
            life_events_dlq, message, f"chunk for unknown rule {command['rule_id']!r}"
        )
        return "unknown rule"

    async def plan() -> Plan:
        warning = await rt.planner.warning_context(event)
        chunk = Plan(event, matched=[rule.id], warning_root=warning.root if warning else None)
        await rt.planner.plan_chunk(chunk, rule, list(command["ids"]), warning)
        encoded.update(refuse_oversized(chunk))
        await record_plans([chunk], command.get("chunk"))
        return chunk

    encoded: dict[str, bytes] = {}
    try:
        chunk = await until_available(plan)
    except Exception as exc:  # a bug must not lose the chunk: keep it, with the reason
        logger.exception("planning chunk %s failed", message.key)
        await dead_letter(life_events_dlq, message, internal_error(exc))
        return "error"
    await publish_plan(chunk, encoded)
    return f"planned {len(chunk.notifications)}"
