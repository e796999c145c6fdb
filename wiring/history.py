"""Past events read back from ``life-events`` (aiokafka, no consumer group: nothing committed),
for backtests. As far back as the topic's retention reaches: production keeps ``life-events``
for at least the longest backtest window (README, The console)."""

from __future__ import annotations

from datetime import datetime

from app.core.errors import EventRejected
from app.intake.events import Event, parse_event
from wiring.kafka_async import read_from_start

MAX_EVENTS = 200_000  # read at most this many records, newest partitions' order aside


async def past_events(servers: list[str], since: datetime, until: datetime,
                      types: frozenset[str], topic: str = "life-events") -> tuple[list[Event], int, bool]:  # fmt: skip
    """The valid events of ``types`` that occurred in [since, until); how many records were read;
    whether the read stopped at MAX_EVENTS."""
    found: dict[str, Event] = {}  # by id: an event published twice counts once
    read = 0
    async for record in read_from_start(servers, [topic], timeout=120, max_records=MAX_EVENTS):
        read += 1
        try:
            event = parse_event(record.value or b"")
        except EventRejected:
            continue
        if event.type in types and since <= event.occurred_at < until:
            found.setdefault(event.id, event)
    return sorted(found.values(), key=lambda e: e.occurred_at), read, read >= MAX_EVENTS
