"""Outbound pacing: a token bucket per channel, shared by every worker through Redis.

Providers limit requests per second per account (Aliyun SendSms: 5,000 QPS; an SMTP relay: what
its operator allows), so the bucket lives in Redis, not in one process. ``acquire`` waits for a
token; nothing is dropped. The bucket holds at most one second's worth of tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

_TAKE = """
local per_ms, capacity, now = tonumber(ARGV[1]) / 1000, tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or capacity)
local last = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
tokens = math.min(capacity, tokens + math.max(0, now - last) * per_ms)
local wait_ms = 0
if tokens >= 0.999 then tokens = math.max(0, tokens - 1) else wait_ms = math.ceil((1 - tokens) / per_ms) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
return wait_ms
"""


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, prefix: str, rates: dict[str, float], *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:  # fmt: skip
        self.redis = redis
        self.prefix = prefix
        self.rates = {channel: rate for channel, rate in rates.items() if rate > 0}
        self.clock = clock
        self.sleep = sleep

    async def acquire(self, channel: str) -> float:
        """Wait for a token of ``channel``; returns the seconds waited (0 for an unlimited channel)."""
        rate = self.rates.get(channel)
        if rate is None:
            return 0.0
        waited = 0.0
        while True:
            now_ms = int(self.clock() * 1000)  # whole milliseconds: exact in Redis' Lua numbers
            wait = (
                int(
                    await self.redis.eval(
                        _TAKE, 1, f"{self.prefix}rate:{channel}", rate, max(rate, 1.0), now_ms
                    )
                )
                / 1000
            )
            if wait <= 0:
                return waited
            await self.sleep(wait)
            waited += wait
