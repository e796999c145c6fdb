"""A timer, every second: deferred notifications whose time has come go back on their lane
(`notifications`, or `notifications-warning`).

Publish first, then forget: a worker that dies in between only publishes a notification twice,
and delivery recognises the second copy. Several workers may run the timer at once for the same
reason.
"""

from __future__ import annotations

import logging
import time

from app.core.redis_client import unavailable
from app.notifications import Notification
from topics import lane
from wiring.faust_app import app, runtime

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0


@app.timer(interval=INTERVAL_SECONDS)
async def release_deferred() -> None:
    await release_once(time.time())


async def release_once(now: float) -> None:
    """One tick: whatever goes wrong is said and tried again at the next one."""
    try:
        await release_due(now)
    except Exception as exc:  # out of a timer it would stop the worker; nothing here is lost
        if unavailable(exc):
            logger.warning("cannot release deferred notifications: %s", type(exc).__name__)
        else:
            logger.exception("releasing deferred notifications failed; tried again in a second")


async def release_due(now: float) -> int:
    state = runtime().state
    released = 0
    for raw in await state.due(now):
        try:
            notification = Notification.from_json(raw)
        except (ValueError, TypeError, KeyError):
            # our own record, unreadable: it can never be sent, and must not block the others
            logger.error("dropping an unreadable deferred notification (%d bytes)", len(raw))
            await state.drop_unreadable_deferred(raw)
            continue
        sent = await lane(notification.category).send(
            key=notification.recipient.encode(), value=raw
        )
        await sent  # acknowledged by the broker before it is forgotten here
        await state.undefer(notification.id)
        released += 1
    if released:
        logger.info("released %d deferred notification(s)", released)
    return released
