"""What the rule book (``app.planning.rulebook``) and the event-type book
(``app.intake.typebook``) share: versioned documents with a draft each, in Redis under
``{prefix}{family}:{id}:versions`` (a list of JSON versions) and ``{prefix}{family}:{id}:draft``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from app.core.codec import text


def now_iso() -> str:
    """The time a version or draft is stamped with, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Book:
    family = ""  # the key family: "rulebook", "eventtypes"

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, ident: str, part: str) -> str:
        return f"{self.prefix}{self.family}:{ident}:{part}"

    async def versions(self, ident: str) -> list[dict[str, Any]]:
        return [json.loads(v) for v in await self.redis.lrange(self._key(ident, "versions"), 0, -1)]

    async def draft(self, ident: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._key(ident, "draft"))
        return json.loads(raw) if raw else None

    async def drafted(self) -> list[str]:
        """The ids with a draft (new ones among them)."""
        start = f"{self.prefix}{self.family}:"
        found = [text(key).removeprefix(start).removesuffix(":draft")
                 async for key in self.redis.scan_iter(match=f"{start}*:draft", count=500)]  # fmt: skip
        return sorted(found)
