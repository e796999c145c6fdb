"""Each address's opt-outs and its place in today's count, in Redis.

Keys (under the configured prefix):

    optout:{address_key}     set of "category:channel" entries; no expiry (README, key families)
    who:{address_key}        sorted set: "district|notification id" by time, for each address and
                             each profile id ("profile:ID") a notification went to; the message
                             search of the console; 30 days
    cap:{recipient}:{day}    sorted set: the day's notifications of a recipient key, in order
                             of first sight (the daily cap); expires after two days
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from app.core.codec import texts
from app.core.redis_client import is_cluster
from app.delivery.unsubscribe import AddressKeys
from app.state.writes import Batched

WHO_TTL_SECONDS = 30 * 24 * 3600

# The message-search index of a batch in one call: KEYS are pairs (the address's index, the
# profile's), ARGV the time, the cut-off of the window, the TTL, then one member per pair. An
# index of one member (most of a warning's: the first message to that address) has nothing
# older to trim: ZCARD, not the range removal that would find nothing.
_INDEX_BATCH = """
local now, cutoff, ttl = ARGV[1], ARGV[2], ARGV[3]
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'NX', now, ARGV[3 + math.floor((i + 1) / 2)])
  if redis.call('ZCARD', KEYS[i]) > 1 then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
return #KEYS
"""


class Preferences:
    """Opt-outs and daily counts in Redis.

    Opt-outs are kept under a keyed hash of the address (``optout:{address_key}``), never the
    address itself: a key listing shows no phone number or e-mail address. They have no expiry:
    an opt-out holds until the person opts in again."""

    def __init__(self, redis: aioredis.Redis, prefix: str, secret: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.secret = secret
        self._index_batch = redis.register_script(_INDEX_BATCH)
        self.clustered = is_cluster(redis)
        self._address_key = AddressKeys(secret).of

    def key(self, address: str) -> str:
        return self.key_of(self._address_key(address))

    def who_key(self, value: str) -> str:
        """The message-search index of an address or a ``profile:ID``: its keyed hash only."""
        return f"{self.prefix}who:{self._address_key(value)}"

    async def queue_index(self, pipe: Pipeline, entries: list[tuple[str, str, str]],
                          now: float) -> None:  # fmt: skip
        """Add to a pipeline, as one script call: each (address, profile id, member) entered in
        the message-search index of the address and of ``profile:ID``, the window trimmed."""
        if not entries:
            return
        keys, members = [], []
        for address, profile_id, member in entries:
            keys += [self.who_key(address), self.who_key(f"profile:{profile_id}")]
            members.append(member)
        if self.clustered:  # the keys are in many slots: the same commands, one key at a time
            for i, key in enumerate(keys):
                pipe.zadd(key, {members[i // 2]: now}, nx=True)
                pipe.zremrangebyscore(key, "-inf", now - WHO_TTL_SECONDS)
                pipe.expire(key, WHO_TTL_SECONDS)
            return
        args: list[str | int] = [repr(now), repr(now - WHO_TTL_SECONDS), WHO_TTL_SECONDS, *members]
        if isinstance(pipe, Batched):
            pipe.script(self._index_batch, keys, args)
        else:
            await self._index_batch(keys=keys, args=args, client=pipe)

    def key_of(self, hashed: str) -> str:
        return f"{self.prefix}optout:{hashed}"

    async def opt_outs(self, address: str) -> set[str]:
        return set(texts(await self.redis.smembers(self.key(address))))

    def queue_opt_outs(self, pipe: Pipeline, address: str) -> None:
        """Add to a pipeline: read the address's opt-outs (its reply: ``set(texts(reply))``)."""
        pipe.smembers(self.key(address))

    async def opt_out(self, address: str, category: str, channel: str) -> None:
        await self.redis.sadd(self.key(address), f"{category}:{channel}")

    async def opt_out_key(self, hashed: str, category: str, channel: str) -> None:
        """An opt-out asked for by an unsubscribe link, which carries only the address's key."""
        await self.redis.sadd(self.key_of(hashed), f"{category}:{channel}")

    async def opt_in(self, address: str, category: str, channel: str) -> None:
        await self.redis.srem(self.key(address), f"{category}:{channel}")

    async def count_today(self, recipient: str, day: str) -> int:
        """How many notifications the recipient key already has today (read only: a preview)."""
        return int(await self.redis.zcard(f"{self.prefix}cap:{recipient}:{day}"))

    async def rank_today_many(self, items: list[tuple[str, str]], day: str) -> list[int]:
        """Each (recipient, notification id)'s 1-based place among the recipient's notifications
        of the day, in one round trip.

        Scored by order of first sight (atomic in Redis): the same notification handled again (a
        retry, a redelivery) keeps its place, so a retry is never capped by later arrivals."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for recipient, notification_id in items:
                pipe.eval(_RANK_SCRIPT, 1, f"{self.prefix}cap:{recipient}:{day}", notification_id)
            return [int(rank) for rank in await pipe.execute()]


_RANK_SCRIPT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], redis.call('ZCARD', KEYS[1]), ARGV[1])
end
redis.call('EXPIRE', KEYS[1], 172800)
return redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
"""
