"""What happened to an event or a notification, step by step, and the counters.

Keys (under the configured prefix):

    tr:{id}       list of trace steps (JSON) for an event id or a notification id; 30 days. A
                  sent notification's last step is its record n:{id} (``with_sent_step``)
    stats:rules   hash of counters "rule_id:outcome"
    stats:events  hash of counters: received, rejected, planned, suppressed, held, …
    stats:{name}  other counters (opt-outs by category and channel, …)
"""

from __future__ import annotations

from typing import Any

from app.core.codec import text
from app.state.writes import (
    SENT_FIELDS,
    TRACE_TTL_SECONDS,
    Store,
    Writes,
    hash_fields,
    read_step,
    trace_step,
    with_sent_step,
)


class Traces(Store):
    async def counters(self, name: str) -> dict[str, int]:
        raw = await self.redis.hgetall(self.key("stats", name))
        return {text(k) or "": int(v) for k, v in raw.items()}

    async def trace(self, ident: str, step: str, **details: Any) -> None:
        await self.trace_many([(ident, step, details)])

    async def trace_many(self, steps: list[tuple[str, str, dict[str, Any]]]) -> None:
        """A step (ident, step, details) for each, in one round trip."""
        writes = Writes()
        for ident, step, details in steps:
            key = self.key("tr", ident)
            writes.rpush(key, trace_step(step, details))
            writes.expire(key, TRACE_TTL_SECONDS)
        await self.apply(writes)

    def add_note(self, writes: Writes, ident: str, steps: list[tuple[str, dict[str, Any]]],
                 counts: dict[str, int]) -> None:  # fmt: skip
        """Add to ``writes``: trace steps of ``ident`` and ``stats:events`` counters."""
        key = self.key("tr", ident)
        writes.rpush(key, *(trace_step(step, details) for step, details in steps))
        writes.expire(key, TRACE_TTL_SECONDS)
        for field, amount in counts.items():
            if amount:
                writes.hincrby(self.key("stats", "events"), field, amount)

    async def steps(self, ident: str) -> list[dict[str, Any]]:
        """An event's or a notification's steps, in order; a sent notification's last step from
        its record (``with_sent_step``). One round trip (on a cluster, one slot: the id's)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(self.key("tr", ident), 0, -1)
            pipe.hmget(self.key("n", ident), list(SENT_FIELDS))
            stored, values = await pipe.execute()
        return with_sent_step([read_step(s) for s in stored], hash_fields(SENT_FIELDS, values))
