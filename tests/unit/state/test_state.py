"""The batched Redis writes behind planning and delivery records (``Writes``)."""

from app.state import TRACE_TTL_SECONDS, DeliveryState, Writes


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

    keys, args = writes.commands()
    assert [args[i] for i in range(len(args)) if args[i] == "HINCRBY"] == ["HINCRBY"] * 2
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


async def test_writes_are_applied_after_redis_forgot_the_script(redis_client, prefix):
    """A restarted Redis has no scripts; the write still happens (the script is loaded again)."""
    state = DeliveryState(redis_client, prefix)
    first = Writes()
    first.hincrby(f"{prefix}stats:events", "received")
    await state.apply(first)
    await redis_client.script_flush()
    again = Writes()
    again.hincrby(f"{prefix}stats:events", "received")
    await state.apply(again)
    assert await state.counters("events") == {"received": 2}


async def test_nothing_to_write_makes_no_call(redis_client, prefix):
    state = DeliveryState(redis_client, prefix)
    await state.apply(Writes())
    await state.set_status_many([], "sending", [])
    await state.sent_many([])
    assert await redis_client.keys(f"{prefix}*") == []
