"""Each notification's delivery record and who is sending it now.

Keys (under the configured prefix):

    n:{id}        hash: status, rule_id, event_id, channel, category, recipient (masked),
                  attempts, error, provider_ref, next_attempt_at, reason, updated_at
    claim:{id}    who is sending it now; expires after the lease
    replay:{dead letter}   set once a dead letter was replayed (``lifecycle dlq replay``)
    ev:{event}    set of the notification ids planned for an event

Statuses: planned → sending → sent | deferred | suppressed | failed. "sent", "suppressed" and
"failed" are final; "deferred" goes back to sending when due.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from enum import StrEnum
from functools import cached_property
from typing import Any, cast

from redis import Redis as SyncRedis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisClusterException, RedisError

from app.core.codec import text, texts
from app.core.masking import mask_address
from app.core.redis_client import is_cluster
from app.notifications import Notification
from app.state.writes import TRACE_TTL_SECONDS, Batched, Store, Writes, hash_fields, now_iso

logger = logging.getLogger(__name__)

CLAIM_LEASE_MS = 60_000
PLANNED_OWN = ("recipient", "profile")  # a planned record's own fields; the rest its chunk's
SENT_OWN = ("attempts", "provider_ref")  # a sent one's, besides its status and time
# Claims given back by their owner only: KEYS claim:{id}…, ARGV[1] the owner; how many it held
_RELEASE_OWN = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"""
# Claims kept: KEYS the claims, ARGV[1] the owner, ARGV[2] the lease in ms; how many are still
# the owner's (those are given the lease again; another's, or one gone, are left alone)
_RENEW_OWN = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    n = n + 1
  end
end
return n
"""
# A batch's first round trip before sending, on one Redis (``Records.queue_begin``): KEYS are
# triples (a notification's claim, its record, its address's opt-outs), ARGV the owner, the lease
# in ms, "1" to take the claims (else they are held already), then the record's fields to read.
# For each triple: 1 if the claim was taken (or is held), else 0; the fields' values (nil where
# missing); the opt-outs. The same commands a pipeline of them runs, without naming each.
_BEGIN = """
local owner, lease, claim = ARGV[1], ARGV[2], ARGV[3] == '1'
local fields = {}
for j = 4, #ARGV do fields[#fields + 1] = ARGV[j] end
local out = {}
for i = 1, #KEYS - 2, 3 do
  local took = 1
  if claim and not redis.call('SET', KEYS[i], owner, 'NX', 'PX', lease) then took = 0 end
  out[#out + 1] = took
  out[#out + 1] = redis.call('HMGET', KEYS[i + 1], unpack(fields))
  out[#out + 1] = redis.call('SMEMBERS', KEYS[i + 2])
end
return out
"""
# A failed notification back to planned: KEYS n:{id}; its status if it was not failed
_REOPEN = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'unknown' end
if status ~= 'failed' then return status end
redis.call('HSET', KEYS[1], 'status', 'planned', 'attempts', '0', 'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'replays', 1)
return 'reopened'
"""


class Status(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    SUPPRESSED = "suppressed"
    FAILED = "failed"


FINAL = (Status.SENT, Status.SUPPRESSED, Status.FAILED)


def decode_record(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k) or "": text(v) or "" for k, v in raw.items()}


# What delivering a notification needs of its record: whether it is settled, and its attempts.
PROGRESS = ("status", "attempts", "next_attempt_at")


def decode_progress(raw: list[Any]) -> dict[str, str]:
    """An HMGET of PROGRESS as a record holding those of its fields that are there."""
    return hash_fields(PROGRESS, raw)


class SentMark:
    """Records a notification "sent" in the event-loop step that hands its message's last byte
    to the kernel (the SMTP gateway's commit hook), with as little as possible between the two:

    - ``ready()``, just before that write: a connection to the Redis that holds the record (a
      cluster's node for its slot) taken from the pool, and the HSET packed;
    - calling it, just after: the packed command sent, one system call, then its reply read;
    - ``close()``, once the send is over whatever happened: the connection given back.

    Between the server holding the message and Redis holding the record there are a few
    microseconds, not a client call's 20 (one Redis) to 100 (a cluster): a worker killed in
    between sends the message again when its work is replayed, and the crash test found that
    on a cluster about one run in eight. A command in the kernel's buffer still reaches Redis
    when the process dies. Best effort: skipped when Redis does not answer (the normal,
    asynchronous record follows the provider's reply; counters and trace are written there).
    Called without ``ready()`` it makes the client's own call."""

    __slots__ = ("attempt", "client", "conn", "key", "packed", "pool")

    def __init__(self, client: SyncRedis, key: str, attempt: int) -> None:
        self.client = client
        self.key = key
        self.attempt = attempt
        self.pool: Any = None
        self.conn: Any = None
        self.packed: Any = None

    def _fields(self) -> list[str]:
        return ["status", Status.SENT, "attempts", str(self.attempt), "updated_at", now_iso()]

    def ready(self) -> None:
        try:
            if is_cluster(self.client):
                node = cast(Any, self.client).get_node_from_key(self.key)
                if node is None or node.redis_connection is None:
                    return  # not known yet: the client's own call, when called
                pool = node.redis_connection.connection_pool
            else:
                pool = self.client.connection_pool
            conn = pool.get_connection()
            self.pool, self.conn = pool, conn
            self.packed = conn.pack_command("HSET", self.key, *self._fields())
        except (RedisError, RedisClusterException, OSError):
            self.close()
            logger.warning("could not get ready to record a send at once; recording it after "
                           "the reply", exc_info=True)  # fmt: skip

    def __call__(self) -> None:
        try:
            if self.conn is None:
                fields = self._fields()
                self.client.hset(
                    self.key, mapping=dict(zip(fields[::2], fields[1::2], strict=True))
                )
                return
            self.conn.send_packed_command(self.packed, check_health=False)
            self.conn.read_response()
        except (RedisError, RedisClusterException, OSError):
            if self.conn is not None:
                self.conn.disconnect()  # a reply may be left unread on it
            logger.warning("could not record a send at once; recording it after the reply")

    def close(self) -> None:
        if self.conn is not None:
            self.pool.release(self.conn)
        self.pool = self.conn = self.packed = None


class Records(Store):
    def sent_mark(self, notification_id: str, attempt: int) -> SentMark | None:
        """The hook that records "sent" the moment a message is handed over (``SentMark``)."""
        if self.sync_redis is None:
            return None
        return SentMark(self.sync_redis, self.key("n", notification_id), attempt)

    async def status(self, notification_id: str) -> str | None:
        return text(await self.redis.hget(self.key("n", notification_id), "status"))

    async def record(self, notification_id: str) -> dict[str, str]:
        return decode_record(await self.redis.hgetall(self.key("n", notification_id)))

    async def reopen(self, notification_id: str, dead_letter: str) -> str:
        """Put a failed notification back to planned for its dead letter's replay: "reopened",
        "replayed" (that letter was already), "unknown" (no record) or its status (not failed)."""
        status = await self.status(notification_id)
        if status != Status.FAILED:
            return status or "unknown"
        if not await self.mark_replayed(dead_letter):  # the letter's mark, then the record: on a
            return "replayed"  # cluster they are in different slots
        now = f"{time.time():.3f}"
        outcome = str(text(await self.redis.eval(_REOPEN, 1, self.key("n", notification_id), now)))
        if outcome != "reopened":  # changed in between: the letter may still be replayed later
            await self.redis.delete(self.key("replay", dead_letter))
        return outcome

    async def mark_replayed(self, dead_letter: str) -> bool:
        """Remember that a dead letter is being replayed; False if it already was."""
        now = f"{time.time():.3f}"
        return bool(await self.redis.set(self.key("replay", dead_letter), now, nx=True,
                                         ex=TRACE_TTL_SECONDS))  # fmt: skip

    def queue_claim(self, pipe: Pipeline, notification_id: str, owner: str, lease_ms: int) -> None:
        """Add to a pipeline of someone else's round trip: try the claim (its reply: claimed?)."""
        pipe.set(self.key("claim", notification_id), owner, nx=True, px=lease_ms)

    def queue_begin(self, pipe: Batched, items: Sequence[tuple[str, str]], owner: str,
                    lease_ms: int, *, claim: bool = True) -> None:  # fmt: skip
        """Add to a batch's round trip on one Redis, as one script call: for each (notification
        id, the key of its address's opt-outs) try the claim (``claim``; else it is held), read
        the record's PROGRESS fields and the opt-outs. Its reply decodes with ``decode_begin``.
        What ``queue_claim``, ``queue_progress`` and an SMEMBERS each would do, without the
        three commands' names and options for every notification (a chunk's thousand)."""
        keys: list[str] = []
        for notification_id, opt_outs in items:
            keys += (self.key("claim", notification_id), self.key("n", notification_id), opt_outs)
        args = [owner, str(lease_ms), "1" if claim else "0", *PROGRESS]
        pipe.script(self._begin_script, keys, args)

    @cached_property
    def _begin_script(self) -> Any:
        return self.redis.register_script(_BEGIN)

    @staticmethod
    def decode_begin(reply: list[Any]) -> list[tuple[bool, dict[str, str], set[str]]]:
        """A ``queue_begin`` reply: each notification's (claimed, record's PROGRESS fields, the
        address's opt-outs)."""
        return [(reply[i] == 1, hash_fields(PROGRESS, reply[i + 1]), set(texts(reply[i + 2])))
                for i in range(0, len(reply), 3)]  # fmt: skip

    def queue_record(self, pipe: Pipeline, notification_id: str) -> None:
        """Add to a pipeline: read the record (its reply decodes with ``decode_record``)."""
        pipe.hgetall(self.key("n", notification_id))

    def queue_progress(self, pipe: Pipeline, notification_id: str) -> None:
        """Add to a pipeline: read the record's PROGRESS fields (its reply decodes with
        ``decode_progress``): three values, not the whole record's dozen."""
        pipe.hmget(self.key("n", notification_id), list(PROGRESS))

    def add_planned(self, writes: Writes, notifications: list[Notification]) -> None:
        """Add to ``writes``: remember planned notifications (a status already reached is never
        overwritten) and which event they belong to."""
        by_event: dict[str, list[str]] = {}
        shared: dict[tuple[str, str, str, str], list[tuple[str, tuple[str, str]]]] = {}
        for n in notifications:  # a chunk's are of one rule, event, channel and category
            shared.setdefault((n.rule_id, n.event_id, n.channel, n.category), []).append(
                (self.key("n", n.id), (mask_address(n.channel, n.address), n.profile_id)))  # fmt: skip
            by_event.setdefault(n.event_id, []).append(n.id)
        for (rule_id, event_id, channel, category), rows in shared.items():
            common = {"status": Status.PLANNED, "rule_id": rule_id, "event_id": event_id,
                      "channel": channel, "category": category}  # fmt: skip
            writes.hset_rows(rows, common, PLANNED_OWN, TRACE_TTL_SECONDS, first_absent=True)
        for event_id, ids in by_event.items():  # a chunk's thousand: one SADD, one EXPIRE
            writes.sadd(self.key("ev", event_id), *ids)
            writes.expire(self.key("ev", event_id), TRACE_TTL_SECONDS)

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

    async def release_own(self, notification_ids: list[str], owner: str) -> None:
        """Give back those of these claims that ``owner`` holds (another's are left alone): after
        a round trip that failed part way, whichever claims it took."""
        keys = [self.key("claim", i) for i in notification_ids]
        if not keys:
            return
        if not self.keys.clustered:
            await self.redis.eval(_RELEASE_OWN, len(keys), *keys, owner)
            return
        async with self.redis.pipeline(transaction=False) as pipe:  # one slot a claim
            for key in keys:
                pipe.eval(_RELEASE_OWN, 1, key, owner)
            await pipe.execute()

    async def renew_own(self, notification_ids: list[str], owner: str, lease_ms: int) -> int:
        """Give those of these claims that ``owner`` still holds a full lease again; how many
        it holds. A claim that has expired (and may be another's now) is not taken back."""
        keys = [self.key("claim", i) for i in notification_ids]
        if not keys:
            return 0
        if not self.keys.clustered:
            return int(await self.redis.eval(_RENEW_OWN, len(keys), *keys, owner, lease_ms))
        async with self.redis.pipeline(transaction=False) as pipe:  # one slot a claim
            for key in keys:
                pipe.eval(_RENEW_OWN, 1, key, owner, lease_ms)
            return sum(int(n) for n in await pipe.execute())

    async def set_status(self, n: Notification, status: Status, **fields: Any) -> None:
        await self.set_status_many([n], status, [fields])

    async def set_status_many(
        self, notifications: list[Notification], status: Status, fields: list[dict[str, Any]]
    ) -> None:
        """Give each notification ``status`` and its own ``fields``, at once."""
        by_fields: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = {}
        for n, more in zip(notifications, fields, strict=True):
            by_fields.setdefault(tuple(more), []).append(
                (self.key("n", n.id), tuple(map(str, more.values()))))  # fmt: skip
        writes = Writes()
        for names, rows in by_fields.items():
            self._add_statuses(writes, status, names, rows)
        self._count_final(writes, notifications, status)
        await self.apply(writes)

    def _add_statuses(self, writes: Writes, status: Status, names: tuple[str, ...],
                      rows: Sequence[tuple[str, Sequence[str]]]) -> None:  # fmt: skip
        """Each record (key, values of ``names``) given ``status``, now, and its values, in one
        operation; its TTL stays its planning's."""
        common = {"status": status, "updated_at": now_iso()}
        writes.hset_rows(rows, common, names, TRACE_TTL_SECONDS)

    def _count_final(self, writes: Writes, notifications: list[Notification], status: Status
                     ) -> None:  # fmt: skip
        if status in FINAL:
            stats = self.key("stats", "rules")
            for rule_id, count in Counter(n.rule_id for n in notifications).items():
                writes.hincrby(stats, f"{rule_id}:{status}", count)

    async def sent_many(self, items: list[tuple[Notification, int, str]]) -> None:
        """Record each (notification, attempt, provider reference) as sent, at once. Its trace's
        "sent" step is this record (``writes.sent_step_of``), not a step stored in the trace."""
        if not items:
            return
        writes = Writes()
        rows = [(self.key("n", n.id), (str(attempt), ref)) for n, attempt, ref in items]
        self._add_statuses(writes, Status.SENT, SENT_OWN, rows)
        self._count_final(writes, [n for n, _, _ in items], Status.SENT)
        await self.apply(writes)

    async def notifications_of(self, event_id: str) -> list[str]:
        return sorted(text(m) or "" for m in await self.redis.smembers(self.key("ev", event_id)))
