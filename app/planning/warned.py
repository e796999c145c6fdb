"""Who has been warned of which weather warning, at which level.

A warning's updates and its cancel reference it (CAP ``references``), possibly through a chain of
updates; all of them share the root: the first warning's id.

    warned:{root}   hash: recipient key → "level rank|profile id"
    wroot:{id}      the root of warning ``id``

An update is not sent again to recipients already warned at the same or a higher level; it is
sent to those newly in the area, and to everyone when the level rose. A cancel can address
exactly the recipients warned (rules with ``recipients: previously_warned: true``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from app.core.codec import text

LEVEL_RANK = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}
TTL_SECONDS = 30 * 24 * 3600


class WarnedRegistry:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def root(self, data: dict[str, Any]) -> str:
        for reference in data.get("references") or []:
            found = await self.redis.get(f"{self.prefix}wroot:{reference}")
            if found:
                return text(found)
        references = data.get("references") or []
        return str(references[0]) if references else str(data["warning_id"])

    async def warned(self, root: str, only: list[str] | None = None) -> dict[str, tuple[int, str]]:
        """recipient key → (level rank, profile id) of everyone warned under ``root`` (or of
        those among the recipient keys ``only``)."""
        key = f"{self.prefix}warned:{root}"
        raw: dict[Any, Any]
        if only is not None:
            values = await self.redis.hmget(key, only) if only else []
            raw = {k: v for k, v in zip(only, values, strict=True) if v is not None}
        else:
            raw = await self.redis.hgetall(key)
        out = {}
        for recipient, value in raw.items():
            rank, _, profile_id = text(value).partition("|")
            out[text(recipient)] = (int(rank), profile_id)
        return out

    async def record(
        self, root: str, warning_id: str, level: str, recipients: Iterable[tuple[str, str]]
    ) -> None:
        """Remember (recipient key, profile id) pairs as warned at ``level`` under ``root``."""
        rank = LEVEL_RANK.get(level, 0)
        key = f"{self.prefix}warned:{root}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{self.prefix}wroot:{warning_id}", root, ex=TTL_SECONDS)
            entries: dict[Any, Any] = {  # redis-py's Mapping type is invariant in its key
                recipient: f"{rank}|{profile_id}" for recipient, profile_id in recipients
            }
            if entries:
                pipe.hset(key, mapping=entries)  # one command, not one per recipient
            pipe.expire(key, TTL_SECONDS)
            await pipe.execute()
