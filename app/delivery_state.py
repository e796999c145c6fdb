"""Delivery state, counters and trace steps in Redis.

Keys (under the configured prefix):

    n:{id}        hash: status, rule_id, event_id, channel, category, recipient (masked),
                  attempts, error, provider_ref, updated_at
    claim:{id}    who is sending it now; expires after the lease
    ev:{event}    set of the notification ids planned for an event
    tr:{id}       list of trace steps (JSON) for an event id or a notification id
    stats:rules   hash of counters "rule_id:outcome"
    stats:events  hash of counters: received, rejected, planned

    deferred      sorted set: notification id → when it is due again (epoch seconds)
    dq:{id}       the deferred notification itself, to publish again when due

Statuses: planned → sending → sent | deferred | suppressed | failed. "sent", "suppressed" and
"failed" are final; "deferred" goes back to sending when due.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from app.masking import mask_address
from app.notifications import Notification

logger = logging.getLogger(__name__)

FINAL = ("sent", "suppressed", "failed")
TRACE_TTL_SECONDS = 30 * 24 * 3600
CLAIM_LEASE_MS = 60_000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _step(step: str, details: dict[str, Any]) -> str:
    """A trace step as stored."""
    return json.dumps({"at": _now(), "t": time.time(), "step": step, **details}, ensure_ascii=False)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


# Runs a list of writes, each encoded as: command, index of its key in KEYS, argument count,
# arguments. One call, one reply, applied atomically (no other client's command runs between).
_APPLY_WRITES = """
local a = 1
while a <= #ARGV do
  local argc = tonumber(ARGV[a + 2])
  redis.call(ARGV[a], KEYS[tonumber(ARGV[a + 1])], unpack(ARGV, a + 3, a + 2 + argc))
  a = a + 3 + argc
end
return #KEYS
"""


class Writes:
    """Writes gathered for one script call (``DeliveryState.apply``) instead of a pipeline: the
    same commands, run atomically as MULTI/EXEC would, but one reply to read instead of one per
    command (redis-py spends more on reading each reply than Redis spends running the command),
    and counters bumped once per field however many times they were counted."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.args: list[str | int] = []
        self.counts: Counter[tuple[str, str]] = Counter()

    def _add(self, command: str, key: str, *args: str | int) -> None:
        index = self.keys.setdefault(key, len(self.keys) + 1)
        self.args += [command, index, len(args), *args]

    def hset(self, key: str, mapping: dict[str, str | int]) -> None:
        self._add("HSET", key, *(x for item in mapping.items() for x in item))

    def hsetnx(self, key: str, field: str, value: str) -> None:
        self._add("HSETNX", key, field, value)

    def expire(self, key: str, seconds: int) -> None:
        self._add("EXPIRE", key, seconds)

    def sadd(self, key: str, member: str) -> None:
        self._add("SADD", key, member)

    def rpush(self, key: str, value: str) -> None:
        self._add("RPUSH", key, value)

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self.counts[(key, field)] += amount

    def commands(self) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV for the script, counters last."""
        for (key, field), amount in self.counts.items():
            if amount:
                self._add("HINCRBY", key, field, amount)
        self.counts.clear()
        return list(self.keys), self.args


class DeliveryState:
    def __init__(
        self, redis: aioredis.Redis, prefix: str, sync_redis: SyncRedis | None = None
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.sync_redis = sync_redis  # for the one write that must not wait for the event loop
        self._apply_writes = redis.register_script(_APPLY_WRITES)

    async def apply(self, writes: Writes) -> None:
        keys, args = writes.commands()
        if args:
            await self._apply_writes(keys=keys, args=args)

    def mark_sent_now(self, notification_id: str, attempt: int) -> None:
        """Record "sent" synchronously, in the event-loop step that handed the message over.

        Best effort: skipped when Redis does not answer at once (the normal, asynchronous record
        follows the provider's reply either way; counters and trace are written there)."""
        if self.sync_redis is None:
            return
        try:
            self.sync_redis.hset(self.key("n", notification_id),
                                 mapping={"status": "sent", "attempts": attempt, "updated_at": _now()})  # fmt: skip
        except (RedisError, OSError):
            logger.warning(
                "could not record %s as sent at once; recording it after the reply", notification_id
            )

    def key(self, kind: str, ident: str) -> str:
        return f"{self.prefix}{kind}:{ident}"

    async def status(self, notification_id: str) -> str | None:
        return _text(await self.redis.hget(self.key("n", notification_id), "status"))

    async def record(self, notification_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.key("n", notification_id))
        return {_text(k) or "": _text(v) or "" for k, v in raw.items()}

    def add_planned(self, writes: Writes, notifications: list[Notification]) -> None:
        """Add to ``writes``: remember planned notifications (a status already reached is never
        overwritten) and which event they belong to."""
        for n in notifications:
            key = self.key("n", n.id)
            writes.hsetnx(key, "status", "planned")
            writes.hset(key, mapping={"rule_id": n.rule_id, "event_id": n.event_id,
                                    "channel": n.channel, "category": n.category,
                                    "recipient": mask_address(n.channel, n.address)})  # fmt: skip
            writes.expire(key, TRACE_TTL_SECONDS)
            writes.sadd(self.key("ev", n.event_id), n.id)
            writes.expire(self.key("ev", n.event_id), TRACE_TTL_SECONDS)

    async def claim(self, notification_id: str, owner: str, lease_ms: int = CLAIM_LEASE_MS) -> bool:
        ok = await self.redis.set(self.key("claim", notification_id), owner, nx=True, px=lease_ms)
        return bool(ok)

    async def claim_ttl_ms(self, notification_id: str) -> int:
        return int(await self.redis.pttl(self.key("claim", notification_id)))

    async def release(self, notification_id: str) -> None:
        await self.release_many([notification_id])

    async def release_many(self, notification_ids: list[str]) -> None:
        if notification_ids:
            await self.redis.delete(*(self.key("claim", i) for i in notification_ids))

    async def set_status(self, n: Notification, status: str, **fields: Any) -> None:
        await self.set_status_many([n], status, [fields])

    async def set_status_many(
        self, notifications: list[Notification], status: str, fields: list[dict[str, Any]]
    ) -> None:
        """Give each notification ``status`` and its own ``fields``, at once."""
        writes = Writes()
        for n, more in zip(notifications, fields, strict=True):
            self._add_status(writes, n, status, more)
        await self.apply(writes)

    def _add_status(
        self, writes: Writes, n: Notification, status: str, fields: dict[str, Any]
    ) -> None:
        key = self.key("n", n.id)
        values: dict[Any, Any] = {
            "status": status,
            "updated_at": _now(),
            **{k: str(v) for k, v in fields.items()},
        }
        writes.hset(key, mapping=values)
        writes.expire(key, TRACE_TTL_SECONDS)
        if status in FINAL:
            writes.hincrby(self.key("stats", "rules"), f"{n.rule_id}:{status}", 1)

    async def defer(self, n: Notification, due: float, reason: str) -> None:
        """Park ``n`` until ``due``; the release timer publishes it again then."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("n", n.id), mapping={"status": "deferred", "next_attempt_at": f"{due:.3f}",
                                                    "reason": reason, "updated_at": _now()})  # fmt: skip
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
        raws = await self.redis.mget([self.key("dq", _text(i) or "") for i in ids])
        return [r.encode() if isinstance(r, str) else r for r in raws if r]

    async def drop_unreadable_deferred(self, raw: bytes) -> None:
        """Remove a deferred record that does not decode (found by its stored bytes)."""
        ids = await self.redis.zrange(self.key("deferred", "all"), 0, -1)
        for ident in ids:
            name = _text(ident) or ""
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

    async def count(self, name: str, field: str, amount: int = 1) -> None:
        await self.redis.hincrby(self.key("stats", name), field, amount)

    async def counters(self, name: str) -> dict[str, int]:
        raw = await self.redis.hgetall(self.key("stats", name))
        return {_text(k) or "": int(v) for k, v in raw.items()}

    async def trace(self, ident: str, step: str, **details: Any) -> None:
        key = self.key("tr", ident)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, _step(step, details))
            pipe.expire(key, TRACE_TTL_SECONDS)
            await pipe.execute()

    def add_note(self, writes: Writes, ident: str, steps: list[tuple[str, dict[str, Any]]],
                 counts: dict[str, int]) -> None:  # fmt: skip
        """Add to ``writes``: trace steps of ``ident`` and ``stats:events`` counters."""
        key = self.key("tr", ident)
        for step, details in steps:
            writes.rpush(key, _step(step, details))
        writes.expire(key, TRACE_TTL_SECONDS)
        for field, amount in counts.items():
            if amount:
                writes.hincrby(self.key("stats", "events"), field, amount)

    async def sent_many(self, items: list[tuple[Notification, int, str]]) -> None:
        """Record each (notification, attempt, provider reference) as sent, with its trace step,
        at once."""
        writes = Writes()
        for n, attempt, ref in items:
            self._add_status(writes, n, "sent", {"attempts": attempt, "provider_ref": ref})
            writes.rpush(
                self.key("tr", n.id),
                _step("attempt", {"attempt": attempt, "outcome": "sent", "ref": ref}),
            )
            writes.expire(self.key("tr", n.id), TRACE_TTL_SECONDS)
        await self.apply(writes)

    async def steps(self, ident: str) -> list[dict[str, Any]]:
        return [json.loads(s) for s in await self.redis.lrange(self.key("tr", ident), 0, -1)]

    async def notifications_of(self, event_id: str) -> list[str]:
        return sorted(_text(m) or "" for m in await self.redis.smembers(self.key("ev", event_id)))
