"""The journeys' records, timer queue and completion index in Redis (``app.planning.journeys``
says what a journey is and lists the keys)."""

from __future__ import annotations

from app.core.codec import texts
from app.state.records import decode_record
from app.state.writes import Store, Writes

# Move a journey on from (step, round) to the next, only if it is still there: KEYS jr:{id};
# ARGV step, round, next step, next round, due, status, now. Returns 1 if moved.
_ADVANCE = """
local rec = redis.call('HMGET', KEYS[1], 'status', 'step', 'round')
if rec[1] ~= 'active' or rec[2] ~= ARGV[1] or rec[3] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'step', ARGV[3], 'round', ARGV[4], 'due', ARGV[5], 'status', ARGV[6],
           'updated_at', ARGV[7])
redis.call('HINCRBY', KEYS[1], 'sent', 1)
return 1
"""
# Take or keep the lease: KEYS jt:leader; ARGV owner, milliseconds. 1 if the caller holds it.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class JourneyStore(Store):
    def journey_key(self, journey: str) -> str:
        return self.key("jr", journey)

    def queue_key(self) -> str:
        return self.key("jt", "due")

    def waiting_key(self, stop_type: str, subject: str) -> str:
        return self.key("jw", f"{stop_type}:{subject}")

    def add_start(self, writes: Writes, journey: str, fields: dict[str, str], due: float | None,
                  stop_on: tuple[str, ...], subject: str, ttl: int, *,
                  status: str = "active") -> None:  # fmt: skip
        """Add to ``writes``: start a journey, unless it was started already (a redelivered
        event): every field is set only where it is not. One with nothing to send (``due``
        None: a holdout, or a rule that only measures) only waits for its completion."""
        key = self.journey_key(journey)
        writes.hsetnx_many(key, {**fields, "status": status, "step": "0", "round": "1",
                                 "due": f"{due or 0:.3f}", "sent": "0"})  # fmt: skip
        writes.expire(key, ttl)
        if due is not None:
            writes.zadd_nx(self.queue_key(), journey, due)
        for stop_type in stop_on:
            writes.sadd(self.waiting_key(stop_type, subject), journey)
            writes.expire(self.waiting_key(stop_type, subject), ttl)

    async def waiting(self, stop_type: str, subject: str) -> list[str]:
        return sorted(texts(await self.redis.smembers(self.waiting_key(stop_type, subject))))

    def add_completion(self, writes: Writes, journey: str, at: str, by: str, stop_type: str,
                       subject: str) -> None:  # fmt: skip
        """Add to ``writes``: the journey's step was done (at ``at``, by event ``by``); nothing
        more is sent for it. The first completion is the one kept."""
        key = self.journey_key(journey)
        writes.hset(key, {"status": "completed"})
        writes.hsetnx(key, "completed_at", at)
        writes.hsetnx(key, "completed_by", by)
        writes.zrem(self.queue_key(), journey)
        writes.srem(self.waiting_key(stop_type, subject), journey)

    async def due_journeys(self, now: float, limit: int = 200) -> list[str]:
        return texts(await self.redis.zrangebyscore(self.queue_key(), "-inf", now, start=0,
                                                    num=limit))  # fmt: skip

    async def journey(self, journey: str) -> dict[str, str]:
        return decode_record(await self.redis.hgetall(self.journey_key(journey)))

    async def advance(self, journey: str, step: int, round_: int,
                      after: tuple[int, int] | None, due: float, now: float) -> bool:  # fmt: skip
        """Move the journey past (step, round): to ``after`` due at ``due``, or to "done" when
        there is none. False if it was no longer there (completed, or moved by another)."""
        next_step, next_round = after if after else (step, round_)
        status = "active" if after else "done"
        moved = await self.redis.eval(_ADVANCE, 1, self.journey_key(journey), str(step),
                                      str(round_), str(next_step), str(next_round), f"{due:.3f}",
                                      status, f"{now:.3f}")  # fmt: skip
        await self.requeue(journey, due if after and moved else None)
        return bool(moved)

    async def requeue(self, journey: str, due: float | None) -> None:
        """Put the queue's entry in step with the record: due then, or none."""
        if due is None:
            await self.redis.zrem(self.queue_key(), journey)
        else:
            await self.redis.zadd(self.queue_key(), {journey: due})

    async def end(self, journey: str, reason: str) -> None:
        """Stop a journey that cannot go on (its rule was removed or lost its follow-up)."""
        await self.redis.hset(self.journey_key(journey), mapping={"status": "ended",
                                                                  "reason": reason})  # fmt: skip
        await self.requeue(journey, None)

    async def lease(self, owner: str, ttl_ms: int) -> bool:
        """Take or keep the lease on sending due steps; True while ``owner`` holds it."""
        return bool(await self.redis.eval(_LEASE, 1, self.key("jt", "leader"), owner, ttl_ms))

    async def queued(self) -> int:
        return int(await self.redis.zcard(self.queue_key()))
