"""Notifications parked until later (quiet hours, a retry's backoff), released by a timer.

Keys (under the configured prefix):

    deferred:all  sorted set: notification id → when it is due again (epoch seconds)
    dq:{id}       the deferred notification itself, to publish again when due

On one server a deferral is one transaction. On a cluster the queue and a notification's keys
are in different slots: the queue's entry is written first, then the record and ``dq:``
together; should the worker die between, the notification's event is handled again (its offset
was not committed) and deferred again, and an entry left without its ``dq:`` is dropped once it
is ``GHOST_SECONDS`` overdue.
"""

from __future__ import annotations

from typing import Any

from app.core.codec import texts
from app.core.redis_client import mget
from app.notifications import Notification
from app.state.records import Status
from app.state.writes import Store, now_iso

GHOST_SECONDS = 300


class DeferredQueue(Store):
    async def defer(self, n: Notification, due: float, reason: str) -> None:
        """Park ``n`` until ``due``; the release timer publishes it again then."""
        queue = self.key("deferred", "all")
        if self.keys.clustered:
            await self.redis.zadd(queue, {n.id: due})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("n", n.id), mapping={"status": Status.DEFERRED, "next_attempt_at": f"{due:.3f}",
                                                    "reason": reason, "updated_at": now_iso()})  # fmt: skip
            pipe.set(self.key("dq", n.id), n.to_json())
            if not self.keys.clustered:
                pipe.zadd(queue, {n.id: due})
            await pipe.execute()

    async def due(self, now: float, limit: int = 500) -> list[bytes]:
        """Deferred notifications (JSON) whose time has come, oldest first."""
        queue = self.key("deferred", "all")
        found: list[Any] = await self.redis.zrangebyscore(
            queue, "-inf", now, start=0, num=limit, withscores=True
        )
        if not found:
            return []
        ids = texts(m for m, _ in found)
        raws = await mget(self.redis, [self.key("dq", i) for i in ids])
        ghosts = [i for i, (_, when), r in zip(ids, found, raws, strict=True)
                  if r is None and float(when) < now - GHOST_SECONDS]  # fmt: skip
        if ghosts:  # an entry whose deferral did not finish (a cluster only; see above)
            await self.redis.zrem(queue, *ghosts)
        return [r.encode() if isinstance(r, str) else r for r in raws if r]

    async def drop_unreadable_deferred(self, raw: bytes) -> None:
        """Remove a deferred record that does not decode (found by its stored bytes)."""
        ids = await self.redis.zrange(self.key("deferred", "all"), 0, -1)
        for name in texts(ids):
            if await self.redis.get(self.key("dq", name)) == raw:
                await self.undefer(name)
        await self.count("events", "unreadable_deferred")

    async def undefer(self, notification_id: str) -> None:
        if self.keys.clustered:  # the entry goes last: one left behind is dropped as a ghost
            await self.redis.delete(self.key("dq", notification_id))
            await self.redis.zrem(self.key("deferred", "all"), notification_id)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key("deferred", "all"), notification_id)
            pipe.delete(self.key("dq", notification_id))
            await pipe.execute()

    async def deferred_count(self) -> int:
        return int(await self.redis.zcard(self.key("deferred", "all")))
