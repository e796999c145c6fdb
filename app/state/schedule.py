"""The date reminders' schedule in Redis (``app.planning.dates`` says what it holds)."""

from __future__ import annotations

from app.core.codec import text, texts
from app.state.writes import Store, Writes

CALENDAR_MEMBER = "*"  # a calendar rule's one entry: ``RULE|*`` (no profile id has a *)


class DateSchedule(Store):
    def queue_key(self) -> str:
        return self.key("ds", "due")

    def sent_key(self, rule_id: str) -> str:
        return self.key("ds", f"sent:{rule_id}")

    @staticmethod
    def member(rule_id: str, profile_id: str) -> str:
        return f"{rule_id}|{profile_id}"

    def add_due(self, writes: Writes, rule_id: str, profile_id: str, due: float) -> None:
        writes.zadd(self.queue_key(), self.member(rule_id, profile_id), due)

    def add_removal(self, writes: Writes, rule_id: str, profile_id: str) -> None:
        writes.zrem(self.queue_key(), self.member(rule_id, profile_id))

    async def sent_for(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        """For each (rule, profile): the date its reminder was last sent for, if any."""
        if not pairs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for rule_id, profile_id in pairs:
                pipe.hget(self.sent_key(rule_id), profile_id)
            return [text(v) for v in await pipe.execute()]

    async def due(self, now: float, limit: int = 500) -> list[tuple[str, str]]:
        """(rule, profile) pairs whose reminder is due by ``now``, earliest first."""
        found = texts(await self.redis.zrangebyscore(self.queue_key(), "-inf", now, start=0,
                                                     num=limit))  # fmt: skip
        return [(m.split("|", 1)[0], m.split("|", 1)[1]) for m in found if "|" in m]

    async def mark_sent(self, rule_id: str, profile_id: str, day: str) -> None:
        """The reminder for ``day`` went out (published): kept, so that storing the profile
        again does not schedule it again, and taken off the queue."""
        await self.redis.hset(self.sent_key(rule_id), profile_id, day)
        await self.redis.zrem(self.queue_key(), self.member(rule_id, profile_id))

    async def drop(self, rule_id: str, profile_id: str) -> None:
        await self.redis.zrem(self.queue_key(), self.member(rule_id, profile_id))

    async def when(self, rule_id: str, profile_id: str) -> float | None:
        score = await self.redis.zscore(self.queue_key(), self.member(rule_id, profile_id))
        return None if score is None else float(score)

    async def scheduled(self) -> int:
        return int(await self.redis.zcard(self.queue_key()))
