"""notifications → deliveries: deliver each planned notification once; publish every status
change; a failed one goes to notifications-dlq with its history."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from faust.types import EventT, StreamT

from agents.common import until_available
from app.delivery import DeliveryOutcome
from app.notifications import Notification
from lifecycle.faust_app import app, runtime
from topics import deliveries, notifications, notifications_dlq

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
    try:
        outcomes = await until_available(lambda: deliverer.deliver(notification))
    except (
        Exception
    ) as exc:  # a bug must not lose the notification: dead-letter it, with the reason
        logger.exception("delivering %s failed", notification.id)
        await notifications_dlq.send(key=notification.id.encode(), value=_json({
            "reason": f"internal error: {type(exc).__name__}: {exc}", "retriable": True, "attempts": None,
            "notification": json.loads(notification.to_json()), "history": []}))  # fmt: skip
        return "error"
    for outcome in outcomes:
        await deliveries.send(key=notification.id.encode(), value=_json(outcome.as_dict()))
        if outcome.dead_letter:
            await dead_letter(notification, outcome)
    return outcomes[-1].status


async def dead_letter(notification: Notification, outcome: DeliveryOutcome) -> None:
    history = await until_available(lambda: runtime().state.steps(notification.id))
    value = {"reason": outcome.error, "retriable": outcome.retriable, "attempts": outcome.attempt,
             "notification": json.loads(notification.to_json()), "history": history}  # fmt: skip
    await notifications_dlq.send(key=notification.id.encode(), value=_json(value))


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
