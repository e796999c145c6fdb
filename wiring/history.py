"""Past events read back from ``life-events`` (aiokafka, no consumer group: nothing committed),
for backtests. As far back as the topic's retention reaches: production keeps ``life-events``
for at least the longest backtest window (README, The console)."""

from __future__ import annotations

import time
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.core.errors import EventRejected
from app.intake.events import Event, parse_event

MAX_EVENTS = 200_000  # read at most this many records, newest partitions' order aside


async def past_events(servers: list[str], since: datetime, until: datetime,
                      types: frozenset[str], topic: str = "life-events") -> tuple[list[Event], int, bool]:  # fmt: skip
    """The valid events of ``types`` that occurred in [since, until); how many records were read;
    whether the read stopped at MAX_EVENTS."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)  # fmt: skip
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return [], 0, False
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        found: dict[str, Event] = {}  # by id: an event published twice counts once
        read, deadline = 0, time.monotonic() + 120
        while (
            read < MAX_EVENTS
            and time.monotonic() < deadline
            and any([await consumer.position(tp) < end[tp] for tp in tps])
        ):
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    read += 1
                    try:
                        event = parse_event(record.value or b"")
                    except EventRejected:
                        continue
                    if event.type in types and since <= event.occurred_at < until:
                        found.setdefault(event.id, event)
        return sorted(found.values(), key=lambda e: e.occurred_at), read, read >= MAX_EVENTS
    finally:
        await consumer.stop()
