"""Which enterprises were told of which policy, and the matches waiting to be told
(``app.planning.policies`` says what a policy is).

Keys (under the configured prefix; the policy id is the hash tag of its key on a cluster):

    pm:due              sorted set: ``policy|enterprise`` → when it was found (the leader tells)
    pm-told:{policy}    hash: enterprise → the day it was told (each enterprise once a policy)
    pm:swept            hash: policy → the version the enterprises stored before it were
                        matched against (a new policy, or a new version, is swept once)
"""

from __future__ import annotations

from app.core.codec import text, texts
from app.state.writes import Store, Writes


class PolicyMatches(Store):
    def queue_key(self) -> str:
        return self.key("pm", "due")

    def told_key(self, policy_id: str) -> str:
        return self.key("pm-told", policy_id)

    async def told(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        """For each (policy, enterprise): the day it was told, or None."""
        if not pairs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for policy_id, enterprise_id in pairs:
                pipe.hget(self.told_key(policy_id), enterprise_id)
            return [text(v) for v in await pipe.execute()]

    def add_found(self, writes: Writes, policy_id: str, enterprise_id: str, at: float) -> None:
        writes.zadd_nx(self.queue_key(), f"{policy_id}|{enterprise_id}", at)

    async def due(self, limit: int = 500) -> list[tuple[str, str]]:
        found = texts(await self.redis.zrange(self.queue_key(), 0, limit - 1))
        return [(m.split("|", 1)[0], m.split("|", 1)[1]) for m in found if "|" in m]

    async def mark_told(self, policy_id: str, enterprise_id: str, day: str) -> None:
        """Told (its event is on the broker): kept, and off the queue."""
        await self.redis.hset(self.told_key(policy_id), enterprise_id, day)
        await self.drop(policy_id, enterprise_id)

    async def drop(self, policy_id: str, enterprise_id: str) -> None:
        await self.redis.zrem(self.queue_key(), f"{policy_id}|{enterprise_id}")

    async def waiting(self) -> int:
        return int(await self.redis.zcard(self.queue_key()))

    def swept_key(self) -> str:
        return self.key("pm", "swept")

    async def swept(self) -> dict[str, int]:
        found = await self.redis.hgetall(self.swept_key())
        return {text(k) or "": int(v) for k, v in found.items()}

    async def mark_swept(self, policy_id: str, version: int) -> None:
        await self.redis.hset(self.swept_key(), policy_id, str(version))
