"""notifications → deliveries: send each planned notification once, publish the outcome."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import until_available
from app.notifications import Notification
from lifecycle.faust_app import app, runtime
from topics import deliveries, notifications

logger = logging.getLogger(__name__)

CONCURRENCY = 8  # sends in flight per worker; one slow recipient does not hold up the others


@app.agent(notifications, concurrency=CONCURRENCY)
async def deliver_notifications(stream: StreamT) -> AsyncIterator[str]:
    async for message in stream.events():
        yield await handle_notification(message)


async def handle_notification(message: EventT) -> str:
    deliverer = runtime().deliverer
    assert deliverer is not None, "the worker's runtime is built with delivery"
    try:
        notification = Notification.from_json(message.value)
    except (ValueError, TypeError, KeyError) as exc:
        origin = message.message
        logger.error("undecodable notification at %s/%s/%s: %s",
                     origin.topic, origin.partition, origin.offset, type(exc).__name__)  # fmt: skip
        return "undecodable"
    outcome = await until_available(lambda: deliverer.deliver(notification))
    value = json.dumps(outcome.as_dict(), ensure_ascii=False).encode("utf-8")
    await deliveries.send(key=notification.id.encode(), value=value)
    return outcome.status
