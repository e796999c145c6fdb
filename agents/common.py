"""What every agent does the same way: dead-letter poison input, wait out an unreachable Redis.

Nothing may escape an agent body: Faust would ack the message and restart the actor, and the
message would be lost. So each message is handled inside its own try, poison input goes to a
dead-letter topic with its reason, and infrastructure trouble (Redis unreachable) pauses the
agent — retrying the same message — until it is back. Work done for a whole batch at once falls
back to one message at a time when it hits a bug, so only the message at fault is set aside.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from faust.types import EventT, StreamT, TopicT

from app.core.masking import scrub
from app.core.redis_client import REDIS_DOWN, unavailable
from app.notifications import Notification
from app.planning.planner import Plan
from topics import REASON_HEADER, lane
from wiring import metrics
from wiring.faust_app import app, runtime
from wiring.metrics import count_dead_letter
from wiring.produce import send_many

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

MAX_DEAD_LETTER_BYTES = 256 * 1024  # well below a Kafka topic's default 1 MB message limit
MAX_KEY_BYTES = 1024
UNAVAILABLE = REDIS_DOWN  # catch, then re-raise what ``unavailable`` says is not an outage
PAUSE_MAX_SECONDS = 5.0


async def until_available(action: Callable[[], Awaitable[T]], what: str = "Redis") -> T:
    """Run ``action``; while its service is unreachable, wait (1, 2, 4, 5, 5… s) and run it again."""
    pause = 1.0
    while True:
        try:
            return await action()
        except UNAVAILABLE as exc:
            if not unavailable(exc):
                raise
            logger.warning(
                "%s unavailable (%s); retrying in %.0f s", what, type(exc).__name__, pause
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, PAUSE_MAX_SECONDS)


async def together_or_alone(
    items: Sequence[T], handle: Callable[[list[T]], Awaitable[Sequence[R]]], what: str
) -> list[R | Exception]:
    """``handle`` all ``items`` at once (one result each, in order), waiting out an unreachable
    Redis; should that raise anything else, ``handle`` each item alone, and put in the place of
    one that still fails the exception it raised."""
    if not items:
        return []
    try:
        return list(await until_available(partial(handle, list(items))))
    except Exception:
        logger.exception("%s: a batch of %d failed; handling each alone", what, len(items))
    results: list[R | Exception] = []
    for item in items:
        try:
            results.extend(await until_available(partial(handle, [item])))
        except Exception as exc:
            logger.exception("%s failed", what)
            results.append(exc)
    return results


_pending: Counter[str] = Counter()  # this process's counts not yet added to the series


async def add_counts(counts: Mapping[str, float]) -> None:
    """Add a batch's counts to the dashboard's series: kept here and written by the
    ``flush_counts`` timer every FLUSH_SECONDS in one round trip, not one per batch (a crash loses
    at most those seconds of the dashboard's counts, never a message). Off with the metrics
    (``LIFECYCLE_METRICS=off``), to measure both."""
    if metrics.COUNTING:
        _pending.update(counts)


async def flush_counts() -> None:
    """Write what ``add_counts`` kept; on failure it is kept for the next round."""
    if not _pending:
        return
    counts = dict(_pending)
    _pending.clear()
    try:
        await runtime().state.add_counts(counts)
    except Exception:  # noqa: BLE001 - Redis away, or anything: try again next round
        _pending.update(counts)
        logger.warning("could not add counts to the dashboard series; kept for the next round")


async def dead_letter(topic: TopicT, message: EventT, reason: str) -> None:
    """Put the bytes as received on ``topic``, with the reason and their origin in headers.

    A value larger than MAX_DEAD_LETTER_BYTES (it may be too large for the topic: that is often
    why it is here) goes as a bounded copy, its first bytes, with its size and SHA-256 in headers.
    The reason is scrubbed of personal data. Should even that send fail, the failure is logged
    and the agent goes on: the message's neighbours are never held hostage by it."""
    count_dead_letter(topic.get_topic_name(), reason)
    origin = message.message
    value = message.value if isinstance(message.value, bytes | None) else bytes(message.value)
    key = message.key if isinstance(message.key, bytes | None) else str(message.key).encode()
    headers: dict[str, Any] = {
        REASON_HEADER: scrub(reason).encode("utf-8"),
        "x-lifecycle-source": f"{origin.topic}/{origin.partition}/{origin.offset}".encode(),
    }
    if value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
        headers["x-lifecycle-truncated"] = b"1"
        headers["x-lifecycle-size"] = str(len(value)).encode()
        headers["x-lifecycle-sha256"] = hashlib.sha256(value).hexdigest().encode()
        value = value[:MAX_DEAD_LETTER_BYTES]
    if key is not None and len(key) > MAX_KEY_BYTES:
        key = key[:MAX_KEY_BYTES]
    try:
        await topic.send(key=key, value=value, headers=headers)
    except Exception:  # the broker refused even the bounded copy: keep the record of it
        logger.exception("could not dead-letter %s/%s/%s (%s); a headers-only record instead",
                         origin.topic, origin.partition, origin.offset, scrub(reason))  # fmt: skip
        try:
            await topic.send(
                key=None, value=b"", headers={**headers, "x-lifecycle-truncated": b"1"}
            )
        except Exception:
            logger.exception("the dead-letter topic %s refused a headers-only record", topic)
            return
    logger.warning("dead-lettered %s/%s/%s: %s", origin.topic, origin.partition, origin.offset,
                   scrub(reason))  # fmt: skip


def batches(stream: StreamT, *, ack: bool = True) -> AsyncGenerator[Sequence[EventT], None]:
    """The stream's events in batches: as many as arrived within ``LIFECYCLE_BATCH_WAIT_MS``, at
    most ``LIFECYCLE_BATCH_MAX``. Faust acks a batch's events only after the agent has handled it
    (and moved on to the next), so a crash mid-batch redelivers the whole batch; with
    ``ack=False`` the caller acks them itself (``planned_ahead``)."""
    settings = runtime().settings
    take_events = stream.take_events  # type: ignore[attr-defined]  # on Stream, not on StreamT
    return take_events(settings.batch_max, within=settings.batch_wait_ms / 1000, ack=ack)


P = TypeVar("P")


async def planned_ahead(
    stream: StreamT,
    plan: Callable[[Sequence[EventT]], Awaitable[P]],
    finish: Callable[[P], Awaitable[list[str]]],
) -> AsyncIterator[list[str]]:
    """The stream's batches (as ``batches`` takes them), each planned by ``plan``, then finished
    by ``finish``; what ``finish`` returns, batch by batch, in order.

    Batch N+1 is planned while batch N finishes: while one waits for Redis (or a gateway), the
    other has the CPU. The order stays: batches are planned one after the other, and finished
    one after the other, and batch N+1 starts to finish only once batch N has. A batch's events
    are acked once it has finished, not when the next batch is taken (``take_events(ack=False)``);
    Faust commits an offset only when every event before it is acked, so a crash before that
    brings the batch back, as it would without this. Stopped (cancelled) mid-batch, what was not
    finished is not acked: it comes again from the committed offset. Should a bug escape
    ``plan`` or ``finish`` (neither lets anything out on purpose), the batch in finishing is
    waited for and what was taken is acked, as ``take_events`` does, so that the partition's
    commits go on; the actor then restarts, as Faust restarts a crashed one."""
    take = batches(stream, ack=False)
    unacked: list[Sequence[EventT]] = []  # batches taken and not yet acked, oldest first

    async def finished(batch: Sequence[EventT], planned: P) -> list[str]:
        statuses = await finish(planned)
        for event in batch:
            await stream.ack(event)
        unacked[:] = [b for b in unacked if b is not batch]
        return statuses

    taking: asyncio.Future[Sequence[EventT]] = asyncio.ensure_future(anext(take))
    finishing: asyncio.Task[list[str]] | None = None
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = (
                {taking} if finishing is None else {taking, finishing}
            )
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if finishing is not None and finishing in done:
                statuses, finishing = finishing.result(), None
                yield statuses
                continue
            try:
                batch = taking.result()
            except StopAsyncIteration:  # the stream ended: the batch in finishing is its last
                if finishing is not None:
                    statuses, finishing = await finishing, None
                    yield statuses
                break
            unacked.append(batch)
            planned = await plan(batch)
            if finishing is not None:
                statuses, finishing = await finishing, None
                yield statuses
            finishing = asyncio.create_task(finished(batch, planned))
            # Taken only now, the next batch is what came meanwhile (up to a full one); taken as
            # soon as this one was, it would be what came within ``within``: smaller batches,
            # more CPU an event.
            taking = asyncio.ensure_future(anext(take))
    except (asyncio.CancelledError, GeneratorExit):
        if finishing is not None:
            finishing.cancel()
        raise
    except Exception:
        if finishing is not None and not finishing.done():
            with contextlib.suppress(Exception):
                await finishing
        for batch in unacked:
            for event in batch:
                await stream.ack(event)
        raise
    finally:
        if not taking.done():
            taking.cancel()
            with contextlib.suppress(BaseException):
                await taking
        await take.aclose()


async def publish_plan(plan: Plan, encoded: Mapping[str, bytes] | None = None) -> None:
    """Each notification of the plan on its lane (warnings apart), keyed by recipient."""
    await publish(plan.notifications, encoded)


async def publish(notifications: Sequence[Notification],
                  encoded: Mapping[str, bytes] | None = None) -> None:  # fmt: skip
    """Each notification on its lane (warnings apart), keyed by recipient, in one go; its JSON
    from ``encoded`` when it was encoded already."""
    await send_records([
        (lane(n.category), n.recipient.encode(), (encoded.get(n.id) if encoded else None) or n.to_json())
        for n in notifications])  # fmt: skip


async def send_record(topic: TopicT, key: bytes, value: bytes) -> None:
    """A record onto ``topic`` through the app's producer itself: what ``topic.send`` does for
    raw bytes without Faust's per-message machinery (a FutureMessage, a channel, callbacks),
    half of its cost, measured. Like ``topic.send``, it returns once the record is buffered;
    the producer is flushed before offsets are committed."""
    await app.producer.send(topic.get_topic_name(), key, value, None, None, None)


async def send_records(records: Sequence[tuple[TopicT, bytes, bytes]]) -> None:
    """Records onto their topics as ``send_record`` would each, in one aiokafka batch a
    partition (``wiring.produce``): less than half the worker CPU a record, measured."""
    if len(records) < 2:
        for topic, key, value in records:
            await send_record(topic, key, value)
        return
    producer = app.producer._ensure_producer()  # type: ignore[attr-defined]  # aiokafka's
    await send_many(producer, [(t.get_topic_name(), k, v) for t, k, v in records])
