"""One script call for a pipeline of simple commands (``app.state.writes.Batched``): the same
replies, shaped the same, as redis-py's pipeline gives for the same commands."""

from __future__ import annotations

from app.state.writes import Batched

INDEX = "redis.call('SADD', KEYS[1], ARGV[1]) return redis.call('SCARD', KEYS[1])"


async def test_batched_commands_answer_as_a_pipeline_does(redis_client, prefix) -> None:
    k = f"{prefix}batched:"
    await redis_client.hset(f"{k}rec", mapping={"status": "sent", "名前": "王强", "attempts": "2"})
    await redis_client.sadd(f"{k}opt", "warning:sms", "reminder:sms")
    await redis_client.set(f"{k}blob", bytes(range(256)) + b"\x00\xff")  # a profile is binary
    await redis_client.set(f"{k}held", "someone else")
    script = redis_client.register_script(INDEX)

    def queue(pipe, *, scripted) -> None:
        pipe.set(f"{k}claim-a", "me", nx=True, px=60_000)  # taken
        pipe.set(f"{k}held", "me", nx=True, px=60_000)  # held by another: not taken
        pipe.hgetall(f"{k}rec")
        pipe.hgetall(f"{k}no-record")
        pipe.smembers(f"{k}opt")
        pipe.smembers(f"{k}no-opt")
        if scripted:
            pipe.script(script, [f"{k}ix-b"], ["m1"])
        pipe.get(f"{k}blob")
        pipe.get(f"{k}nothing")
        pipe.hmget(f"{k}rec", ["status", "missing", "名前"])
        pipe.hmget(f"{k}no-record", ["status", "attempts"])

    batched = Batched(redis_client)
    async with batched:
        queue(batched, scripted=True)
        got = await batched.execute()
    await redis_client.delete(f"{k}claim-a")
    async with redis_client.pipeline(transaction=False) as pipe:
        queue(pipe, scripted=False)
        await script(keys=[f"{k}ix-a"], args=["m1"], client=pipe)
        expected = await pipe.execute()
    scripted = expected.pop()  # the pipeline's script went last; Batched's in its place
    expected.insert(6, scripted)
    assert got == expected
    assert got[:2] == [True, None] and got[3] == {} and got[5] == set() and got[8] is None
    assert got[2][b"status"] == b"sent" and got[4] == {b"warning:sms", b"reminder:sms"}
    assert got[6] == 1 and got[7] == bytes(range(256)) + b"\x00\xff"
    assert got[9] == [b"sent", None, "王强".encode()] and got[10] == [None, None]
    assert await redis_client.pttl(f"{k}claim-a") > 50_000  # the lease was set


async def test_a_batch_of_nothing_but_a_script_or_nothing_at_all(redis_client, prefix) -> None:
    script = redis_client.register_script(INDEX)
    batched = Batched(redis_client)
    batched.script(script, [f"{prefix}batched:only"], ["x"])
    assert await batched.execute() == [1]
    assert await Batched(redis_client).execute() == []


async def script_exists_calls(redis_client) -> int:
    stats = await redis_client.info("commandstats")
    return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))


async def test_a_batch_with_a_script_is_one_round_trip(redis_client, prefix) -> None:
    """redis-py asks SCRIPT EXISTS before a pipeline holding EVALSHAs, a round trip of its own
    on every delivery batch (its claims and the message-search index's script). Batched sends
    the script's text instead; Redis compiles it once and finds it again by its hash."""
    script = redis_client.register_script(INDEX)
    before = await script_exists_calls(redis_client)
    for n in range(3):
        batched = Batched(redis_client)
        batched.get(f"{prefix}batched:nothing")
        batched.script(script, [f"{prefix}batched:ix"], [f"m{n}"])
        assert await batched.execute() == [None, n + 1]
    assert await script_exists_calls(redis_client) == before
