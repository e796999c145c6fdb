"""The blast-radius guard: a rule that suddenly reaches far more recipients than usual is held for
an operator instead of sent.

What is counted is messages (an enterprise with five contacts and two channels is up to ten), not
profiles. A send is held when it exceeds ``LIFECYCLE_BLAST_CEILING`` messages; when a rule's
version has never had a run approved and it exceeds ``LIFECYCLE_BLAST_FIRST_RUN`` messages (a new
or changed rule starts small until someone releases its first large run); or when the rule has at
least ``LIFECYCLE_BLAST_MIN_RUNS`` recent runs and it is more than ``LIFECYCLE_BLAST_FACTOR`` times
their median. Runs that reached nobody do not count: a stream of empty sends (forged or not)
cannot drag the median to zero and so hold the next real one. The operator sees why (``lifecycle held list``,
``GET /held/``) and releases it (``lifecycle held release ID``, ``POST /held/ID/release/``).

    runs:{rule}    list: message counts of the rule's last 20 runs that reached anyone
    approved:{rule}:{version}   set once a held run of that version was released
    held:{id}      JSON: the event, the rule, the audience size, the reason, when
    held           set of held ids
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

import redis.asyncio as aioredis

from app.core.codec import text

RUNS_KEPT = 20


class HeldSend(TypedDict):
    """A send held for an operator, as stored and as ``GET /held/`` shows it."""

    id: str  # "{event id}~{rule id}"
    event: dict[str, Any]  # the event document, as received
    rule_id: str
    audience: int  # messages counted (or estimated) when it was held
    reason: str
    held_at: str
    rule_version: NotRequired[
        int
    ]  # the version that would have sent it: its author may not release it
    sample: NotRequired[
        list[dict[str, str]]
    ]  # a few of the messages: channel, masked address, text


@dataclass(frozen=True)
class BlastPolicy:
    factor: float = 10.0
    ceiling: int = 500_000
    min_runs: int = 3
    first_run: int = 100  # 0: a new rule version is not held for its first run


class BlastGuard:
    def __init__(self, redis: aioredis.Redis, prefix: str, policy: BlastPolicy) -> None:
        self.redis = redis
        self.prefix = prefix
        self.policy = policy

    async def reason_to_hold(
        self, rule_id: str, audience: int, version: int | None = None
    ) -> str | None:
        """Why a send of ``audience`` messages by the rule should wait for a person; None: go."""
        if audience > self.policy.ceiling:
            return f"{audience} messages is over the ceiling of {self.policy.ceiling}"
        first = self.policy.first_run
        if (
            first
            and version is not None
            and audience > first
            and not await self.approved(rule_id, version)
        ):
            return (f"{audience} messages is over {first} for version {version} of the rule, "
                    "whose first large run nobody has released yet")  # fmt: skip
        runs = [
            int(r)
            for r in await self.redis.lrange(f"{self.prefix}runs:{rule_id}", 0, RUNS_KEPT - 1)
        ]
        if len(runs) < self.policy.min_runs:
            return None
        median = statistics.median(runs)
        if audience > self.policy.factor * max(median, 1):
            return (f"{audience} messages is {audience / max(median, 1):.0f}× the median of {median:g} "
                    f"over the rule's last {len(runs)} runs (limit {self.policy.factor:g}×)")  # fmt: skip
        return None

    async def approved(self, rule_id: str, version: int) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}approved:{rule_id}:{version}"))

    async def approve(self, rule_id: str, version: int, by: str) -> None:
        """A person released a run of this rule version: its later runs go by the median."""
        await self.redis.set(f"{self.prefix}approved:{rule_id}:{version}", by)

    async def record_run(self, rule_id: str, audience: int) -> None:
        if audience <= 0:  # reached nobody: says nothing of the rule's usual size
            return
        key = f"{self.prefix}runs:{rule_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, audience)
            pipe.ltrim(key, 0, RUNS_KEPT - 1)
            await pipe.execute()

    async def hold(self, event: dict[str, Any], rule_id: str, audience: int, reason: str, *,
                   rule_version: int | None = None, sample: list[dict[str, str]] | None = None) -> str:  # fmt: skip
        hold_id = f"{event['id']}~{rule_id}"
        record: HeldSend = {"id": hold_id, "event": event, "rule_id": rule_id, "audience": audience, "reason": reason,
                  "held_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        if rule_version is not None:
            record["rule_version"] = rule_version
        if sample:
            record["sample"] = sample
        return await self.restore(record)

    async def restore(self, record: HeldSend) -> str:
        """Hold ``record`` (again: a release whose chunks could not be published gives it back)."""
        hold_id = record["id"]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self.prefix}held:{hold_id}", json.dumps(record, ensure_ascii=False))
            pipe.sadd(f"{self.prefix}held", hold_id)
            await pipe.execute()
        return hold_id

    async def held(self) -> list[HeldSend]:
        ids = sorted(text(m) for m in await self.redis.smembers(f"{self.prefix}held"))
        raws = await self.redis.mget([f"{self.prefix}held:{i}" for i in ids]) if ids else []
        return [json.loads(r) for r in raws if r]

    async def is_held(self, hold_id: str) -> bool:
        return bool(await self.redis.sismember(f"{self.prefix}held", hold_id))

    async def take(self, hold_id: str) -> HeldSend | None:
        """Remove a held send and return it, to be released; None if there is no such hold."""
        raw = await self.redis.getdel(f"{self.prefix}held:{hold_id}")
        await self.redis.srem(f"{self.prefix}held", hold_id)
        return json.loads(raw) if raw else None
