"""Outbound pacing: a token bucket per channel, shared by every worker through Redis.

Providers limit requests per second per account (Aliyun SendSms: 5,000 QPS; an SMTP relay: what
its operator allows), so the bucket lives in Redis, not in one process. ``acquire`` waits for a
batch's tokens (one round trip when the bucket holds them); nothing is dropped. ``take_now`` takes
only what the bucket holds now: a batch delivered where it is planned goes there only with its
tokens in hand, and the rest to its lane, where they wait. The bucket holds at most one second's
worth of tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

# Take up to ARGV[4] whole tokens; reply {taken, ms until the rest (at most a bucket's worth)
# will be there} (0 when all were taken). Whole milliseconds: exact in Lua's numbers.
_TAKE = """
local per_ms, capacity, now = tonumber(ARGV[1]) / 1000, tonumber(ARGV[2]), tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or capacity)
local last = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
tokens = math.min(capacity, tokens + math.max(0, now - last) * per_ms)
local taken = math.min(want, math.floor(tokens + 0.001))
tokens = math.max(0, tokens - taken)
local wait_ms = 0
if taken < want then
  wait_ms = math.max(1, math.ceil((math.min(want - taken, capacity) - tokens) / per_ms))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
return {taken, wait_ms}
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

    def paced(self, channel: str) -> bool:
        return channel in self.rates

    async def acquire(self, channel: str, count: int = 1) -> float:
        """Wait for ``count`` tokens of ``channel`` (one round trip when the bucket holds them);
        returns the seconds waited (0 for an unlimited channel)."""
        waited = 0.0
        while count > 0:
            taken, wait = await self._take(channel, count)
            count -= taken
            if count > 0:
                await self.sleep(wait)
                waited += wait
        return waited

    async def take_now(self, channel: str, count: int) -> int:
        """Take up to ``count`` tokens of ``channel`` that are there now, without waiting; how
        many were taken (``count`` for an unlimited channel)."""
        if count <= 0:
            return 0
        return (await self._take(channel, count))[0]

    async def _take(self, channel: str, count: int) -> tuple[int, float]:
        rate = self.rates.get(channel)
        if rate is None:
            return count, 0.0
        now_ms = int(self.clock() * 1000)
        taken, wait_ms = await self.redis.eval(
            _TAKE, 1, f"{self.prefix}rate:{channel}", rate, max(rate, 1.0), now_ms, count
        )
        return int(taken), int(wait_ms) / 1000
