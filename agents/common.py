"""What every agent does the same way: dead-letter poison input, wait out an unreachable Redis.

Nothing may escape an agent body: Faust would ack the message and restart the actor, and the
message would be lost. So each message is handled inside its own try, poison input goes to a
dead-letter topic with its reason, and infrastructure trouble (Redis unreachable) pauses the
agent — retrying the same message — until it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from faust.types import EventT, TopicT
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.planning import Plan
from lifecycle.faust_app import runtime
from topics import REASON_HEADER

logger = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError)
PAUSE_MAX_SECONDS = 5.0


async def until_available(action: Callable[[], Awaitable[T]], what: str = "Redis") -> T:
    """Run ``action``; while its service is unreachable, wait (1, 2, 4, 5, 5… s) and run it again."""
    pause = 1.0
    while True:
        try:
            return await action()
        except UNAVAILABLE as exc:
            logger.warning(
                "%s unavailable (%s); retrying in %.0f s", what, type(exc).__name__, pause
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, PAUSE_MAX_SECONDS)


async def dead_letter(topic: TopicT, message: EventT, reason: str) -> None:
    """Put the bytes as received on ``topic``, with the reason and their origin in headers."""
    origin = message.message
    headers: dict[str, Any] = {
        REASON_HEADER: reason.encode("utf-8"),
        "x-lifecycle-source": f"{origin.topic}/{origin.partition}/{origin.offset}".encode(),
    }
    await topic.send(key=message.key, value=message.value, headers=headers)
    logger.warning(
        "dead-lettered %s/%s/%s: %s", origin.topic, origin.partition, origin.offset, reason
    )


async def record_plan(plan: Plan, chunk_number: int | None = None, *,
                      first_steps: Sequence[tuple[str, dict[str, Any]]] = (), received: int = 0) -> None:  # fmt: skip
    """Remember what a plan (or one chunk of it) contains: planned states, who is warned, trace
    steps and counters — in as few round trips as that takes."""
    rt = runtime()
    event = plan.event
    await rt.state.planned_many(plan.notifications)
    if plan.warning_root and event.type in ("weather.warning.issued", "weather.warning.updated"):
        warned = {
            (n.recipient, n.profile_id) for n in plan.notifications if n.category == "warning"
        }
        await rt.planner.warned.record(
            plan.warning_root, event.data["warning_id"], event.data["level"], warned
        )
    step = "planned" if chunk_number is None else f"chunk {chunk_number}"
    details = {"rules": plan.matched, "notifications": [n.id for n in plan.notifications][:200],
               "skipped": [f"{r}: {why}" for r, why in plan.skipped][:50]}  # fmt: skip
    await rt.state.note(event.id, [*first_steps, (step, details)],
                        {"received": received, "planned": len(plan.notifications)})  # fmt: skip


async def publish_plan(plan: Plan) -> None:
    from topics import lane

    for n in plan.notifications:
        await lane(n.category).send(key=n.recipient.encode(), value=n.to_json())
