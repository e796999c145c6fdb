"""Writes batched into one Redis script call, and the base every state store shares.

``Writes`` gathers HSET/EXPIRE/SADD/RPUSH/HINCRBY commands for one ``EVALSHA``: atomic like
MULTI/EXEC, but one reply instead of one per command, one JSON argument instead of one per word,
and each counter bumped once per batch.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis import Redis as SyncRedis

from app.core.codec import compact_json, json_bytes, text
from app.core.redis_client import Keys, is_cluster, slot
from app.core.timestamps import utc_now_ms

TRACE_TTL_SECONDS = 30 * 24 * 3600


def now_iso() -> str:
    return utc_now_ms()


def trace_step(step: str, details: dict[str, Any]) -> str:
    """A trace step as stored: its time once (epoch seconds to the millisecond), no spaces.
    ``read_step`` gives it back with its ISO time ``at`` as well."""
    return compact_json({"t": round(time.time(), 3), "step": step, **details})


# What a record holds of its "sent" step
SENT_FIELDS = ("status", "updated_at", "attempts", "provider_ref")


def sent_step_of(record: dict[str, str]) -> dict[str, Any] | None:
    """The "sent" attempt step a record says happened, as ``read_step`` gives a stored step:
    ``{"at", "t", "step": "attempt", "attempt", "outcome": "sent", "ref"}`` (``ref`` where the
    provider's reference was recorded). A sent notification's last step is not stored in its
    trace (one list, one RPUSH and one EXPIRE a recipient, a fifth of a warning's Redis bytes):
    the record holds all it said, and the trace's readers add it from there. None unless the
    record's status is "sent"."""
    if record.get("status") != "sent":
        return None
    at = record.get("updated_at") or ""
    step: dict[str, Any] = {"at": at}
    try:
        step["t"] = round(datetime.fromisoformat(at).timestamp(), 3)
    except ValueError:
        pass
    attempts = record.get("attempts") or ""  # as written, digits; a record gone wrong reads 1
    counted = attempts.isascii() and attempts.isdigit() and len(attempts) <= 6
    step |= {"step": "attempt", "attempt": int(attempts) if counted else 1,
             "outcome": "sent"}  # fmt: skip
    if record.get("provider_ref"):
        step["ref"] = record["provider_ref"]
    return step


def with_sent_step(steps: list[dict[str, Any]], record: dict[str, str]) -> list[dict[str, Any]]:
    """A notification's stored steps and, when its record says sent, the "sent" step at the end
    (unless stored there already: a trace written before the step moved to the record has it)."""
    sent = sent_step_of(record)
    if sent is None or (steps and steps[-1].get("outcome") == "sent"):
        return steps
    return [*steps, sent]


def read_step(raw: str | bytes) -> dict[str, Any]:
    """A stored trace step, with ``at`` (ISO, UTC, milliseconds) from its epoch time. A step
    stored before the time was kept once carries its own ``at``."""
    step: dict[str, Any] = json.loads(raw)
    if "at" not in step and isinstance(step.get("t"), int | float):
        at = datetime.fromtimestamp(step["t"], UTC).isoformat(timespec="milliseconds")
        return {"at": at, **step}
    return step


# Runs a list of writes, given as one JSON array (ARGV[1]) of [command, index of its key in KEYS,
# arguments…], every argument a string. One call, one reply, applied atomically (no other
# client's command runs between). One JSON argument, not one argument per word: redis-py packs
# each argument of a command in Python, and a batch's writes have thousands of them. HSETNX with
# several field-value pairs (which Redis refuses) is one HSET when the hash is not there (a new
# journey's dozen fields: one call, not twelve), else one HSETNX per pair. HSET* writes many
# hashes (``Writes.hset_rows``): [HSET*, 0, mode, TTL, number of common arguments, the common
# fields and values, number of own fields, their names, then each hash's key index and its own
# values]; mode "kept" is an HSET that sets the TTL only when every field was new (the hash was
# made by it), mode "first-absent" sets the first common field only where it is not (HSETNX),
# the rest always, and the TTL always.
_APPLY_WRITES = """
local ops = cjson.decode(ARGV[1])
for i = 1, #ops do
  local op = ops[i]
  if op[1] == 'HSETNX' and #op > 4 then
    if redis.call('EXISTS', KEYS[op[2]]) == 0 then
      redis.call('HSET', KEYS[op[2]], unpack(op, 3))
    else
      for j = 3, #op - 1, 2 do
        redis.call('HSETNX', KEYS[op[2]], op[j], op[j + 1])
      end
    end
  elseif op[1] == 'HSET*' then
    local mode, ttl, common = op[3], op[4], op[5]
    local args = {}
    for j = 1, common do args[j] = op[5 + j] end
    local width = op[6 + common]
    local names = 6 + common
    local total = common + 2 * width
    local at = names + width + 1
    while at <= #op do
      local key = KEYS[op[at]]
      for j = 1, width do
        args[common + 2 * j - 1] = op[names + j]
        args[common + 2 * j] = op[at + j]
      end
      if mode == 'first-absent' then
        redis.call('HSETNX', key, args[1], args[2])
        if total > 2 then redis.call('HSET', key, unpack(args, 3, total)) end
        redis.call('EXPIRE', key, ttl)
      elseif redis.call('HSET', key, unpack(args, 1, total)) * 2 == total then
        redis.call('EXPIRE', key, ttl)
      end
      at = at + width + 1
    end
  else
    redis.call(op[1], KEYS[op[2]], unpack(op, 3))
  end
end
return #KEYS
"""


def _pairs(mapping: Mapping[str, str | int]) -> list[str]:
    """A hash's fields and values, flat, every value a string (the script's JSON wants strings)."""
    flat: list[str] = []
    for field, value in mapping.items():
        flat.append(field)
        flat.append(value if isinstance(value, str) else str(value))
    return flat


def hash_fields(fields: Sequence[str], raw: Sequence[Any]) -> dict[str, str]:
    """An HMGET's reply for ``fields`` as the hash's fields that are there, decoded."""
    return {f: text(v) for f, v in zip(fields, raw, strict=True) if v is not None}


MEMBERS_PER_OP = 1000  # a set's members or a list's values in one operation of the script


class Writes:
    """Writes gathered for one script call (``DeliveryState.apply``) instead of a pipeline: the
    same commands, run atomically as MULTI/EXEC would, but one reply to read instead of one per
    command (redis-py spends more on reading each reply than Redis spends running the command),
    one argument to pack instead of one per word, and counters bumped once per field however
    many times they were counted."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.ops: list[list[str | int]] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.expires: dict[str, int] = {}
        self.last_fields: dict[str, dict[str, str]] = {}

    def _add(self, command: str, key: str, *args: str) -> None:
        """One operation; every argument already a string (the script's JSON wants strings).
        Called some twenty times a notification: no generator here, measured at a tenth of a
        subject event's worker CPU with one."""
        keys = self.keys
        index = keys.get(key)
        if index is None:
            index = keys[key] = len(keys) + 1
        self.ops.append([command, index, *args])

    def hset(self, key: str, mapping: dict[str, str | int]) -> None:
        self._add("HSET", key, *_pairs(mapping))

    def hset_kept(self, key: str, mapping: dict[str, str | int], seconds: int) -> None:
        """HSET, and the hash's TTL ``seconds`` only if every field was new, so the hash was
        made here: a record's later writes (a notification's status) keep the TTL its first
        write set, without an EXPIRE each. A hash that somehow was not there still expires."""
        if not mapping:  # an HSET of no field is an error, which would fail the whole batch
            return
        self.hset_rows([(key, ())], mapping, (), seconds)

    def hset_rows(self, rows: Iterable[tuple[str, Sequence[str]]], common: Mapping[str, str | int],
                  fields: Sequence[str], seconds: int, *, first_absent: bool = False) -> None:  # fmt: skip
        """For each (key, values) of ``rows``: the hash's ``common`` fields and its own
        ``values`` of ``fields`` set, as ``hset_kept`` would (the TTL only on a hash made here),
        in one operation for all: a chunk's thousand records name their fields, and give the
        values they share, once (per hash, two ``_add`` calls and a dict fewer, and a third of
        the script's arguments). ``first_absent``: the first common field is set only where it
        is not there (a status already reached is kept), and the TTL is always set."""
        pairs = _pairs(common)
        width = len(fields)
        if not pairs and not width or first_absent and not pairs:
            raise ValueError("hset_rows: no field to set" if not first_absent
                             else "hset_rows: first_absent needs a common field")  # fmt: skip
        mode = "first-absent" if first_absent else "kept"
        op: list[str | int] = ["HSET*", 0, mode, str(seconds), len(pairs), *pairs, width, *fields]
        header = len(op)
        keys = self.keys
        for key, values in rows:
            if len(values) != width:
                raise ValueError(f"hset_rows: {len(values)} values for {width} fields")
            index = keys.get(key)
            if index is None:
                index = keys[key] = len(keys) + 1
            op.append(index)
            op.extend(values)
        if len(op) > header:
            self.ops.append(op)

    def hset_last(self, key: str, field: str, value: str) -> None:
        """The hash's field set once, after the batch's other writes, to the last value given:
        for an index every event of a batch writes the same to (an outcome's rule versions)."""
        self.last_fields.setdefault(key, {})[field] = value

    def hsetnx(self, key: str, field: str, value: str) -> None:
        self._add("HSETNX", key, field, value)

    def hsetnx_many(self, key: str, mapping: dict[str, str]) -> None:
        """Each field set only where it is not, as one operation (the script runs an HSETNX for
        each pair)."""
        self._add("HSETNX", key, *_pairs(mapping))

    def expire(self, key: str, seconds: int) -> None:
        """The key's time to live, set once after the batch's other writes (the last one given
        wins): a notification's record is written three times as it is planned, and a chunk's
        event and journey indexes a thousand times, each wanting the same TTL. None of the
        writes here clears a TTL (no SET, no PERSIST), so setting it last gives the same keys."""
        self.expires[key] = seconds

    def sadd(self, key: str, *members: str) -> None:
        """Members in operations of MEMBERS_PER_OP at most: the script unpacks an operation's
        arguments onto Lua's stack, which refuses some 8,000 (a chunk of a large fan-out may
        plan more notifications of one event than that)."""
        for start in range(0, len(members), MEMBERS_PER_OP):
            self._add("SADD", key, *members[start : start + MEMBERS_PER_OP])

    def srem(self, key: str, member: str) -> None:
        self._add("SREM", key, member)

    def zadd_nx(self, key: str, member: str, score: float) -> None:
        """Add ``member`` at ``score`` unless it is there already (its score is kept)."""
        self._add("ZADD", key, "NX", f"{score:.3f}", member)

    def zadd(self, key: str, member: str, score: float) -> None:
        self._add("ZADD", key, f"{score:.3f}", member)

    def zrem(self, key: str, member: str) -> None:
        self._add("ZREM", key, member)

    def rpush(self, key: str, *values: str) -> None:
        for start in range(0, len(values), MEMBERS_PER_OP):  # in order, bounded as ``sadd``
            self._add("RPUSH", key, *values[start : start + MEMBERS_PER_OP])

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self.counts[(key, field)] += amount

    def commands(self) -> tuple[list[str], list[list[str | int]]]:
        """KEYS and the operations for the script; last ``hset_last``'s fields, TTLs, counters."""
        for key, mapping in self.last_fields.items():
            self.hset(key, dict(mapping))
        self.last_fields.clear()
        for key, seconds in self.expires.items():
            self._add("EXPIRE", key, str(seconds))
        self.expires.clear()
        for (key, field), amount in self.counts.items():
            if amount:
                self._add("HINCRBY", key, field, str(amount))
        self.counts.clear()
        return list(self.keys), self.ops


def _encode(ops: list[list[str | int]]) -> bytes:
    return json_bytes(ops)


def by_slot(
    keys: list[str], ops: list[list[str | int]]
) -> list[tuple[list[str], list[list[str | int]]]]:
    """The writes split into one (KEYS, operations) group per cluster slot, in their order
    within each slot."""
    groups: dict[int, tuple[dict[str, int], list[list[str | int]]]] = {}
    slots = [slot(k) for k in keys]
    for op in ops:
        if op[0] == "HSET*":  # one operation of many hashes: its rows split by slot
            _rows_by_slot(op, keys, slots, groups)
            continue
        index = int(op[1]) - 1
        names, group_ops = groups.setdefault(slots[index], ({}, []))
        position = names.setdefault(keys[index], len(names) + 1)
        group_ops.append([op[0], position, *op[2:]])
    return [(list(names), group_ops) for names, group_ops in groups.values()]


def _rows_by_slot(op: list[str | int], keys: list[str], slots: list[int],
                  groups: dict[int, tuple[dict[str, int], list[list[str | int]]]]) -> None:  # fmt: skip
    """An HSET* operation's rows added to their slots' groups: one HSET* a slot, its header
    the same, placed where its first row is (so the slot's writes keep their order)."""
    common = int(op[4])
    width = int(op[5 + common])
    start = 6 + common + width
    header = op[:start]
    made: dict[int, list[str | int]] = {}
    for at in range(start, len(op), width + 1):
        index = int(op[at]) - 1
        names, group_ops = groups.setdefault(slots[index], ({}, []))
        position = names.setdefault(keys[index], len(names) + 1)
        part = made.get(slots[index])
        if part is None:
            part = made[slots[index]] = list(header)
            group_ops.append(part)
        part.append(position)
        part.extend(op[at + 1 : at + 1 + width])


class Store:
    """Redis, the key names and the batched writer, shared by the state stores."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, sync_redis: SyncRedis | None = None
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keys = Keys(prefix, is_cluster(redis))
        self.sync_redis = sync_redis  # for the one write that must not wait for the event loop
        self._apply_writes = redis.register_script(_APPLY_WRITES)

    async def apply(self, writes: Writes) -> None:
        keys, ops = writes.commands()
        if not ops:
            return
        if not self.keys.clustered:
            await self._apply_writes(keys=keys, args=[_encode(ops)])
            return
        await self._apply_by_slot(by_slot(keys, ops))

    async def _apply_by_slot(self, groups: list[tuple[list[str], list[list[str | int]]]]) -> None:
        """On a cluster: one script call per slot (a script may touch one slot only), sent
        together (the client writes one batch to each node). Each slot's writes are atomic; a
        notification's keys share a slot (their hash tag is its id), so each notification's are.
        EVAL, not EVALSHA: a cluster pipeline refuses EVALSHA; Redis compiles the script once
        and finds it again by its hash."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for names, group_ops in groups:
                pipe.eval(_APPLY_WRITES, len(names), *names, _encode(group_ops))
            await pipe.execute()

    def key(self, kind: str, ident: str) -> str:
        return self.keys.item(kind, ident)

    async def count(self, name: str, field: str, amount: int = 1) -> None:
        await self.redis.hincrby(self.key("stats", name), field, amount)


# Runs a list of commands whose replies are wanted (ARGV[1], as for _APPLY_WRITES); the replies
# in order, each as the command gave it (a nil as false, then nil on the wire).
_RUN_COMMANDS = """
local ops = cjson.decode(ARGV[1])
local out = {}
for i = 1, #ops do
  local op = ops[i]
  out[i] = redis.call(op[1], KEYS[op[2]], unpack(op, 3))
end
return out
"""


class Batched:
    """A pipeline of simple commands (SET, GET, HGETALL, HMGET, SMEMBERS) run by one script call
    on one Redis: what redis-py would pack and parse command by command (a chunk's claims, records
    and opt-outs are some 1,500 commands) is one JSON argument and one reply, parsed in C. Replies
    come back shaped as a pipeline's: SET True or None, HGETALL a dict, HMGET a list, SMEMBERS a
    set. Registered scripts queued with ``script`` go in the same round trip. Used as
    ``redis.pipeline()`` is (``async with``, then ``execute``); on a cluster the commands' keys
    span slots, and the caller uses a real pipeline instead."""

    _shapes: dict[str, Any] = {"SET": lambda r: True if r else None, "GET": lambda r: r,
                               "SMEMBERS": set, "HMGET": list}  # fmt: skip

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.writes = Writes()  # its keys and operations, none of its counters
        self.order: list[tuple[str, int]] = []  # ("op", n) or ("script", n), as queued
        self.scripts: list[tuple[Any, list[str], list[Any]]] = []

    async def __aenter__(self) -> Batched:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _queue(self, command: str, key: str, *args: str) -> None:
        self.order.append((command, len(self.writes.ops)))
        self.writes._add(command, key, *args)

    def set(self, key: str, value: str, *, nx: bool = False, px: int | None = None) -> None:
        options: list[str] = ["NX"] if nx else []
        if px:
            options += ["PX", str(px)]
        self._queue("SET", key, value, *options)

    def get(self, key: str) -> None:
        self._queue("GET", key)

    def hgetall(self, key: str) -> None:
        self._queue("HGETALL", key)

    def smembers(self, key: str) -> None:
        self._queue("SMEMBERS", key)

    def hmget(self, key: str, keys: list[str]) -> None:
        """The values of the hash's fields ``keys``, in order, None where missing (redis-py's
        ``hmget(name, keys)``)."""
        self._queue("HMGET", key, *keys)

    def script(self, script: Any, keys: list[str], args: list[Any]) -> None:
        """A registered script (``redis.register_script``), its own call in the round trip."""
        self.order.append(("script", len(self.scripts)))
        self.scripts.append((script, keys, args))

    async def execute(self) -> list[Any]:
        keys, ops = self.writes.keys, self.writes.ops
        async with self.redis.pipeline(transaction=False) as pipe:
            if ops:
                pipe.eval(_RUN_COMMANDS, len(keys), *keys, _encode(ops))
            for script, script_keys, args in self.scripts:  # EVAL, not the script's EVALSHA:
                # redis-py first asks SCRIPT EXISTS for a pipeline's EVALSHAs, a round trip more
                pipe.eval(script.script, len(script_keys), *script_keys, *args)
            replies = await pipe.execute()
        answers = iter(replies[0] if ops else [])
        scripted = replies[1:] if ops else replies
        out: list[Any] = []
        for command, n in self.order:
            if command == "script":
                out.append(scripted[n])
                continue
            reply = next(answers)
            if command == "HGETALL":
                out.append(dict(zip(reply[::2], reply[1::2], strict=True)))
            else:
                out.append(self._shapes[command](reply))
        return out
