"""Notifications parked until later (quiet hours, a retry's backoff), released by a timer.

Keys (under the configured prefix):

    deferred:all  sorted set: notification id → when it is due again (epoch seconds)
    dq:{id}       the deferred notification itself, to publish again when due
"""

from __future__ import annotations

from app.core.codec import texts
from app.notifications import Notification
from app.state.records import Status
from app.state.writes import Store, now_iso


class DeferredQueue(Store):
    async def defer(self, n: Notification, due: float, reason: str) -> None:
        """Park ``n`` until ``due``; the release timer publishes it again then."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("n", n.id), mapping={"status": Status.DEFERRED, "next_attempt_at": f"{due:.3f}",
                                                    "reason": reason, "updated_at": now_iso()})  # fmt: skip
            pipe.set(self.key("dq", n.id), n.to_json())
            pipe.zadd(self.key("deferred", "all"), {n.id: due})
            await pipe.execute()

    async def due(self, now: float, limit: int = 500) -> list[bytes]:
        """Deferred notifications (JSON) whose time has come, oldest first."""
        ids = await self.redis.zrangebyscore(
            self.key("deferred", "all"), "-inf", now, start=0, num=limit
        )
        if not ids:
            return []
        raws = await self.redis.mget([self.key("dq", i) for i in texts(ids)])
        return [r.encode() if isinstance(r, str) else r for r in raws if r]

    async def drop_unreadable_deferred(self, raw: bytes) -> None:
        """Remove a deferred record that does not decode (found by its stored bytes)."""
        ids = await self.redis.zrange(self.key("deferred", "all"), 0, -1)
        for name in texts(ids):
            if await self.redis.get(self.key("dq", name)) == raw:
                await self.undefer(name)
        await self.count("events", "unreadable_deferred")

    async def undefer(self, notification_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key("deferred", "all"), notification_id)
            pipe.delete(self.key("dq", notification_id))
            await pipe.execute()

    async def deferred_count(self) -> int:
        return int(await self.redis.zcard(self.key("deferred", "all")))
