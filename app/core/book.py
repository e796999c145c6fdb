"""What the rule book (``app.planning.rulebook``), the event-type book (``app.intake.typebook``)
and the policy book (``app.planning.policybook``) share: versioned documents with a draft each, in Redis under
``{prefix}{family}:{id}:versions`` (a list of JSON versions) and ``{prefix}{family}:{id}:draft``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from app.core.codec import text
from app.core.errors import BookError


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


class ReviewedBook(Book):
    """A book whose drafts are submitted as they are saved (when they pass) and decided by
    another person: the event types' and the policies'. The draft keeps its document under
    ``field``; ``noun`` names it in refusals."""

    field = ""  # "type", "policy"
    noun = ""  # "event type", "policy"
    index = ""  # the set of ids with versions: "names", "ids"

    async def save_draft(self, ident: str, doc: dict[str, Any], author: str,
                         errors: list[dict[str, str]]) -> dict[str, Any]:  # fmt: skip
        """Keep ``doc`` as the draft: submitted if it has no errors; a colleague's draft waiting
        for a decision is not overwritten (409)."""
        current = await self.draft(ident)
        if current and current["status"] == "submitted" and current["author"] != author:
            raise BookError(409, f"a draft by {current['author']} is waiting for approval")
        draft = {self.field: doc, "author": author, "status": "draft" if errors else "submitted",
                 "errors": errors, "saved_at": now_iso()}  # fmt: skip
        await self.redis.set(self._key(ident, "draft"), json.dumps(draft, ensure_ascii=False))
        return draft

    async def waiting(self, ident: str, by: str) -> dict[str, Any]:
        """The draft ``by`` may decide: submitted, and not ``by``'s own (four eyes)."""
        draft = await self.draft(ident)
        if draft is None or draft["status"] != "submitted":
            raise BookError(409, f"{self.noun} {ident} has no draft waiting for approval")
        if by == draft["author"]:
            raise BookError(403, f"you cannot approve or reject a {self.noun} you drafted")
        return draft

    async def reject(self, ident: str, by: str, reason: str) -> dict[str, Any]:
        draft = await self.waiting(ident, by)
        draft |= {"status": "rejected", "rejected_by": by, "rejected_at": now_iso(),
                  "reason": reason}  # fmt: skip
        await self.redis.set(self._key(ident, "draft"), json.dumps(draft, ensure_ascii=False))
        return draft

    async def publish(self, ident: str, doc: dict[str, Any], draft: dict[str, Any], by: str,
                      number: int) -> dict[str, Any]:  # fmt: skip
        """The decided draft (as ``doc``) becomes version ``number``, in one transaction: kept,
        listed, the draft gone, and the rule book's generation bumped, which every process
        watches and reloads on."""
        version = {"version": number, self.field: doc, "author": draft["author"],
                   "approved_by": by, "created_at": now_iso()}  # fmt: skip
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._key(ident, "versions"), json.dumps(version, ensure_ascii=False))
            pipe.sadd(f"{self.prefix}{self.family}:{self.index}", ident)
            pipe.delete(self._key(ident, "draft"))
            pipe.incr(f"{self.prefix}rulebook:generation")
            await pipe.execute()
        return version
