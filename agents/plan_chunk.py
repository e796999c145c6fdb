"""fanout → deliveries (warnings) or notifications (the rest): plan one chunk of a large audience
(``Planner.plan_chunk_command``). Any worker takes any chunk.

A warning's chunk is delivered here, a batch at a time, as the lane's agent would deliver it:
the same claims, policy, gateway batches and ``deliveries`` records, without a hop through
`notifications-warning` (one production and one consumption per recipient, about a third of a
recipient's cost). A crash mid-chunk leaves the chunk uncommitted: it is planned again into the
same notification ids, and what was sent is found settled and not sent again. The other
categories' chunks go to their lane, paced and deferred there, so that a large reminder never
holds a warning's chunk up."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import dead_letter, publish_plan, until_available
from agents.deliver_notifications import deliver_planned
from app.core.errors import ChunkRejected, internal_error
from app.intake.events import Event
from app.notifications import Category, Notification
from app.planning.fanout import ChunkCommand
from app.planning.planner import Plan, refuse_oversized
from app.planning.rules import Rule
from topics import fanout, life_events_dlq
from wiring.faust_app import app, runtime

logger = logging.getLogger(__name__)

# A warning's chunk goes to the deliverer whole, up to this many at once (else in batches of
# LIFECYCLE_BATCH_MAX, if larger): five Redis round trips and one gateway call a batch, not a
# chunk's share of three batches' (Aliyun's same-text call takes 1,000 numbers).
CHUNK_BATCH_MAX = 1000
# Two chunks at once: one's Redis round trips and gateway call overlap the other's work. Their
# planning (CPU, mostly) takes turns, so that the first chunk's SMS go as soon as with one.
CHUNK_CONCURRENCY = 2
_planning: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None


def planning_turn() -> asyncio.Lock:
    """The lock a chunk holds while it is planned (one of the running loop's: a test may run
    several loops one after another, and a lock waited on in one cannot be in another)."""
    global _planning
    loop = asyncio.get_running_loop()
    if _planning is None or _planning[0] is not loop:
        _planning = (loop, asyncio.Lock())
    return _planning[1]


@app.agent(fanout, concurrency=CHUNK_CONCURRENCY)
async def plan_chunk(stream: StreamT) -> AsyncIterator[str]:
    async for message in stream.events():
        yield await handle_chunk(message)


async def handle_chunk(message: EventT) -> str:
    rt = runtime()
    planner = rt.planner
    try:
        command, event, rule = planner.read_chunk(message.value)
    except ChunkRejected as exc:
        await dead_letter(life_events_dlq, message, exc.reason)
        return exc.status
    if rule.category != Category.WARNING:
        return await plan_and_deliver(message, command, event, rule)
    with rt.urgency.running():  # a policy sweep waits meanwhile
        return await plan_and_deliver(message, command, event, rule)


async def plan_and_deliver(message: EventT, command: ChunkCommand, event: Event, rule: Rule
                           ) -> str:  # fmt: skip
    rt = runtime()
    planner = rt.planner
    encoded: dict[str, bytes] = {}

    def published(n: Notification) -> bool:  # not a warning delivered here
        return rt.deliverer is None or n.category != Category.WARNING

    async def plan() -> Plan:
        chunk = await planner.plan_chunk_command(command, event, rule)
        encoded.update(refuse_oversized(chunk, published))
        await planner.record([chunk], command.get("chunk"))
        return chunk

    try:
        async with planning_turn():
            chunk = await until_available(plan)
    except Exception as exc:  # a bug must not lose the chunk: keep it, with the reason
        logger.exception("planning chunk %s failed", message.key)
        await dead_letter(life_events_dlq, message, internal_error(exc))
        return "error"
    here = [n for n in chunk.notifications if n.category == Category.WARNING]
    if not here or rt.deliverer is None:
        await publish_plan(chunk, encoded)
        return f"planned {len(chunk.notifications)}"
    chunk.notifications[:] = [n for n in chunk.notifications if n.category != Category.WARNING]
    await publish_plan(chunk, encoded)  # a rule's chunk is of one category: none, as a rule
    size = max(rt.settings.batch_max, min(len(here), CHUNK_BATCH_MAX))
    statuses: Counter[str] = Counter()
    try:
        for start in range(0, len(here), size):
            statuses.update(await deliver_planned(here[start : start + size], chunk.profiles))
    except Exception as exc:  # a bug must not lose the chunk's rest: keep the chunk, replayable
        logger.exception("delivering chunk %s failed", message.key)  # (what went is settled)
        await dead_letter(life_events_dlq, message, internal_error(exc))
        return "error"
    logger.info("chunk %s of %s delivered, %d warning(s): %s", command.get("chunk"), event.id,
                len(here), ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))  # fmt: skip
    return f"delivered {len(here)}"
