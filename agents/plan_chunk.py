"""fanout → notifications: plan one chunk of a large audience (``Planner.plan_chunk_command``).
Any worker takes any chunk."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import dead_letter, publish_plan, until_available
from app.core.errors import ChunkRejected, internal_error
from app.planning.planner import Plan, refuse_oversized
from topics import fanout, life_events_dlq
from wiring.faust_app import app, runtime

logger = logging.getLogger(__name__)


@app.agent(fanout)
async def plan_chunk(stream: StreamT) -> AsyncIterator[str]:
    async for message in stream.events():
        yield await handle_chunk(message)


async def handle_chunk(message: EventT) -> str:
    planner = runtime().planner
    try:
        command, event, rule = planner.read_chunk(message.value)
    except ChunkRejected as exc:
        await dead_letter(life_events_dlq, message, exc.reason)
        return exc.status
    encoded: dict[str, bytes] = {}

    async def plan() -> Plan:
        chunk = await planner.plan_chunk_command(command, event, rule)
        encoded.update(refuse_oversized(chunk))
        await planner.record([chunk], command.get("chunk"))
        return chunk

    try:
        chunk = await until_available(plan)
    except Exception as exc:  # a bug must not lose the chunk: keep it, with the reason
        logger.exception("planning chunk %s failed", message.key)
        await dead_letter(life_events_dlq, message, internal_error(exc))
        return "error"
    await publish_plan(chunk, encoded)
    return f"planned {len(chunk.notifications)}"
