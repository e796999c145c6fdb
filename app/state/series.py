"""Counts by minute and by hour, for the console's dashboard: what every worker did, added up in
Redis (a worker's own /metrics counters are its alone).

Keys (under the configured prefix):

    ts:m:{epoch minute}   hash of counters ("events:planned", "sent:sms", "latency_sum:sms", …); 2 days
    ts:h:{epoch hour}     the same by hour; 8 days

A worker keeps its counts and writes them every 2 s (``agents/flush_counts.py``) in one pipelined
round trip: a few HINCRBY, never one per message or per batch. Fields are bounded like metric
labels (outcomes, channels, rule ids).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from app.core.codec import text
from app.state.writes import Store

MINUTE_TTL = 2 * 86400
HOUR_TTL = 8 * 86400


class Series(Store):
    async def add_counts(self, counts: Mapping[str, float], now: float | None = None) -> None:
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        now = time.time() if now is None else now
        minute, hour = (
            self.key("ts", f"m:{int(now // 60)}"),
            self.key("ts", f"h:{int(now // 3600)}"),
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, ttl in ((minute, MINUTE_TTL), (hour, HOUR_TTL)):
                for field, value in counts.items():
                    if isinstance(value, int):
                        pipe.hincrby(key, field, value)
                    else:
                        pipe.hincrbyfloat(key, field, value)
                pipe.expire(key, ttl)
            await pipe.execute()

    async def series(
        self, unit: str, count: int, now: float | None = None
    ) -> list[tuple[int, dict[str, float]]]:
        """The last ``count`` minutes (``unit="m"``) or hours (``"h"``), oldest first: (start, counts)."""
        step = 60 if unit == "m" else 3600
        now = time.time() if now is None else now
        last = int(now // step)
        slots = list(range(last - count + 1, last + 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for slot in slots:
                pipe.hgetall(self.key("ts", f"{unit}:{slot}"))
            replies = await pipe.execute()
        return [
            (slot * step, {text(k): float(v) for k, v in reply.items()})
            for slot, reply in zip(slots, replies, strict=True)
        ]
