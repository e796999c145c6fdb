"""The batched Redis writes behind planning and delivery records (``Writes``)."""

import pytest
import redis.asyncio as aioredis

from app.state import TRACE_TTL_SECONDS, DeliveryState, Writes
from devstack.stack import RedisServer
from tests.conftest import LOGS


async def test_writes_run_every_command_and_sum_each_counter_once(redis_client, prefix):
    state = DeliveryState(redis_client, prefix)
    await redis_client.hset(f"{prefix}n:1", "status", "sent")
    writes = Writes()
    writes.hsetnx(f"{prefix}n:1", "status", "planned")  # a status reached is kept
    writes.hsetnx(f"{prefix}n:2", "status", "planned")
    writes.hset(f"{prefix}n:2", {"rule_id": "r", "attempts": 2})
    writes.expire(f"{prefix}n:2", TRACE_TTL_SECONDS)
    writes.sadd(f"{prefix}ev:E", "1")
    writes.sadd(f"{prefix}ev:E", "2")
    writes.rpush(f"{prefix}tr:E", '{"step": "received"}')
    writes.rpush(f"{prefix}tr:E", '{"step": "planned"}')
    for _ in range(3):
        writes.hincrby(f"{prefix}stats:events", "received")
    writes.hincrby(f"{prefix}stats:events", "planned", 5)
    writes.hincrby(f"{prefix}stats:events", "rejected", 0)

    keys, ops = writes.commands()
    assert [op[0] for op in ops].count("HINCRBY") == 2
    await state.apply(writes)

    assert await redis_client.hget(f"{prefix}n:1", "status") == b"sent"
    assert await redis_client.hgetall(f"{prefix}n:2") == {
        b"status": b"planned",
        b"rule_id": b"r",
        b"attempts": b"2",
    }
    assert 0 < await redis_client.ttl(f"{prefix}n:2") <= TRACE_TTL_SECONDS
    assert await redis_client.smembers(f"{prefix}ev:E") == {b"1", b"2"}
    assert await redis_client.lrange(f"{prefix}tr:E", 0, -1) == [
        b'{"step": "received"}',
        b'{"step": "planned"}',
    ]
    assert await state.counters("events") == {"received": 3, "planned": 5}


async def test_writes_are_applied_after_redis_forgot_the_script(tmp_path):
    """A restarted Redis has no scripts; the write still happens (the script is loaded again).
    On a Redis of its own: SCRIPT FLUSH is server-wide, never for the shared one."""
    server = RedisServer.start(LOGS, folder=tmp_path)
    client = aioredis.Redis.from_url(server.url)
    try:
        state = DeliveryState(client, "t:")
        first = Writes()
        first.hincrby("t:stats:events", "received")
        await state.apply(first)
        await client.script_flush()
        again = Writes()
        again.hincrby("t:stats:events", "received")
        await state.apply(again)
        assert await state.counters("events") == {"received": 2}
    finally:
        await client.aclose()
        server.stop()


async def test_every_value_is_written_byte_for_byte(redis_client, prefix):
    """What the JSON argument carries arrives unchanged: Chinese, emoji, quotes, backslashes,
    newlines, NUL, numbers too long for a Lua number's default format."""
    state = DeliveryState(redis_client, prefix)
    values = {"zh": "盐田区台风红色预警", "emoji": "🌀⚠️", "quotes": 'a "b" \\ c', "lines": "1\n2\r\n",
              "nul": "a\x00b", "big": 1764670000123456789, "float": "1764670000.123", "empty": ""}  # fmt: skip
    writes = Writes()
    writes.hset(f"{prefix}n:v", values)
    writes.rpush(f"{prefix}tr:v", "{}\u2028")
    await state.apply(writes)
    stored = await redis_client.hgetall(f"{prefix}n:v")
    assert {k.decode(): v.decode() for k, v in stored.items()} == {
        k: str(v) for k, v in values.items()
    }
    assert await redis_client.lrange(f"{prefix}tr:v", 0, -1) == ["{}\u2028".encode()]


async def test_nothing_to_write_makes_no_call(redis_client, prefix):
    state = DeliveryState(redis_client, prefix)
    await state.apply(Writes())
    await state.set_status_many([], "sending", [])
    await state.sent_many([])
    assert await redis_client.keys(f"{prefix}*") == []


def test_a_trace_step_keeps_its_time_once_and_reads_back_with_its_iso_time():
    from datetime import datetime

    from app.state.writes import read_step, trace_step

    stored = trace_step("attempt", {"attempt": 1, "outcome": "sent", "to": "张三"})
    assert '"at"' not in stored and " " not in stored and "张三" in stored
    step = read_step(stored)
    assert step["step"] == "attempt" and step["outcome"] == "sent"
    assert datetime.fromisoformat(step["at"]).timestamp() == pytest.approx(step["t"], abs=0.001)
    old = '{"at": "2026-12-01T08:00:00.000+00:00", "t": 1796112000.0, "step": "planned"}'
    assert read_step(old)["at"] == "2026-12-01T08:00:00.000+00:00"  # written before: as it was
