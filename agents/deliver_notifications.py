"""notifications → deliveries: deliver each planned notification once; publish every status
change; a failed one goes to notifications-dlq with its history."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial

from faust.types import EventT, StreamT, TopicT

from agents.common import (
    add_counts,
    batches,
    dead_letter,
    send_records,
    together_or_alone,
    until_available,
)
from app.core.codec import json_bytes
from app.core.errors import internal_error
from app.delivery.deliverer import DeliveryOutcome
from app.notifications import Notification
from app.profiles.model import Profile
from topics import deliveries, notifications, notifications_dlq
from wiring.faust_app import app, runtime
from wiring.metrics import count_dead_letter, count_deliveries, series_counts

logger = logging.getLogger(__name__)

CONCURRENCY = 2  # batches in flight per lane and worker: a slow batch does not hold up the next


@app.agent(notifications, concurrency=CONCURRENCY)
async def deliver_notifications(stream: StreamT) -> AsyncIterator[str]:
    async for batch in batches(stream):
        for status in await handle_notifications(batch):
            yield status


async def handle_notifications(messages: Sequence[EventT]) -> list[str]:
    """Deliver a batch; publish every status change; dead-letter what failed. A notification that
    does not decode goes to notifications-dlq as received, with the reason in a header."""
    statuses = ["undecodable"] * len(messages)
    decoded: list[tuple[int, Notification]] = []
    for i, message in enumerate(messages):
        try:
            decoded.append((i, Notification.from_json(message.value)))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            await dead_letter(
                notifications_dlq, message, f"undecodable notification: {type(exc).__name__}: {exc}"
            )
    try:
        delivered = await deliver_planned([n for _, n in decoded])
    except Exception as exc:  # outside the deliverer's own guard (the producer, a bug): keep them
        logger.exception("delivering a batch of %d failed", len(decoded))
        for i, _ in decoded:
            await dead_letter(notifications_dlq, messages[i], internal_error(exc))
            statuses[i] = "error"
        return statuses
    for (i, _), status in zip(decoded, delivered, strict=True):
        statuses[i] = status
    counts = Counter(statuses)
    logger.info("delivered a batch of %d: %s", len(messages),
                ", ".join(f"{count} {status}" for status, count in sorted(counts.items())))  # fmt: skip
    return statuses


async def deliver_planned(batch: list[Notification], profiles: Mapping[str, Profile] | None = None,
                          *, paced: bool = False, leave_contested: bool = False) -> list[str]:  # fmt: skip
    """Deliver planned notifications (from a lane, or where they were planned, with the profiles
    that read); publish every status change; dead-letter what failed. Their last statuses.
    ``paced``: the caller holds their pacing tokens. ``leave_contested``: one another worker
    holds a claim on is not waited for; its status is ``contested``, and it is the caller's."""
    deliverer = runtime().deliverer
    assert deliverer is not None, "the worker's runtime is built with delivery"
    deliver = partial(deliverer.deliver_many, profiles=profiles, paced=paced,
                      leave_contested=leave_contested)  # fmt: skip
    results = await together_or_alone(batch, deliver, "delivering")
    statuses: list[str] = []
    records: list[tuple[TopicT, bytes, bytes]] = []
    failed: list[tuple[Notification, DeliveryOutcome]] = []
    counted: list[tuple[str, str, str, str, object]] = []  # for the metrics, at once
    for n, outcomes in zip(batch, results, strict=True):
        if isinstance(outcomes, Exception):  # a bug must not lose the notification: keep it
            count_dead_letter(notifications_dlq.get_topic_name(), internal_error(outcomes))
            await notifications_dlq.send(key=n.id.encode(), value=_json({
                "reason": internal_error(outcomes), "retriable": True,
                "attempts": None, "notification": json.loads(n.to_json()), "history": []}))  # fmt: skip
            statuses.append("error")
            continue
        if not outcomes:  # left to the caller (``leave_contested``)
            statuses.append("contested")
            continue
        key = n.id.encode()
        for outcome in outcomes:
            counted.append((n.rule_id, n.channel, n.category, outcome.status,
                            n.event_published_at))  # fmt: skip
            records.append((deliveries, key, _json(outcome.as_dict())))
            if outcome.dead_letter:
                failed.append((n, outcome))
        statuses.append(outcomes[-1].status)
    count_deliveries(counted)
    await send_records(records)  # the batch's status changes, each notification's in order
    for n, outcome in failed:
        await dead_letter_failed(n, outcome)
    await add_counts(series_counts(batch, results))
    return statuses


async def dead_letter_failed(notification: Notification, outcome: DeliveryOutcome) -> None:
    count_dead_letter(notifications_dlq.get_topic_name(), outcome.error or "delivery failed")
    history = await until_available(lambda: runtime().state.steps(notification.id))
    value = {"reason": outcome.error, "retriable": outcome.retriable, "attempts": outcome.attempt,
             "notification": json.loads(notification.to_json()), "history": history}  # fmt: skip
    await notifications_dlq.send(key=notification.id.encode(), value=_json(value))


def _json(value: object) -> bytes:
    return json_bytes(value)
