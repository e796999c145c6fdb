"""The batched Redis writes behind planning and delivery records (``Writes``)."""

import pytest
import redis.asyncio as aioredis

from app.state import TRACE_TTL_SECONDS, DeliveryState, Writes
from devstack.stack import RedisServer
from tests.conftest import LOGS
from tests.helpers import ON_BOTH_REDIS


@ON_BOTH_REDIS
async def test_writes_run_every_command_and_sum_each_counter_once(redis_client, prefix):
    state = DeliveryState(redis_client, prefix)
    n1, n2, ev, tr = (
        state.key(k, i) for k, i in (("n", "1"), ("n", "2"), ("ev", "E"), ("tr", "E"))
    )
    stats = state.key("stats", "events")  # on a cluster each in a slot of its own: one call each
    await redis_client.hset(n1, "status", "sent")
    writes = Writes()
    writes.hsetnx(n1, "status", "planned")  # a status reached is kept
    writes.hsetnx(n2, "status", "planned")
    writes.hset(n2, {"rule_id": "r", "attempts": 2})
    writes.expire(n2, TRACE_TTL_SECONDS)
    writes.sadd(ev, "1")
    writes.sadd(ev, "2")
    writes.rpush(tr, '{"step": "received"}')
    writes.rpush(tr, '{"step": "planned"}')
    for _ in range(3):
        writes.hincrby(stats, "received")
    writes.hincrby(stats, "planned", 5)
    writes.hincrby(stats, "rejected", 0)

    keys, ops = writes.commands()
    assert [op[0] for op in ops].count("HINCRBY") == 2
    await state.apply(writes)

    assert await redis_client.hget(n1, "status") == b"sent"
    assert await redis_client.hgetall(n2) == {
        b"status": b"planned",
        b"rule_id": b"r",
        b"attempts": b"2",
    }
    assert 0 < await redis_client.ttl(n2) <= TRACE_TTL_SECONDS
    assert await redis_client.smembers(ev) == {b"1", b"2"}
    assert await redis_client.lrange(tr, 0, -1) == [
        b'{"step": "received"}',
        b'{"step": "planned"}',
    ]
    assert await state.counters("events") == {"received": 3, "planned": 5}


@ON_BOTH_REDIS
async def test_several_fields_set_only_where_they_are_not_in_one_operation(redis_client, prefix):
    """A redelivered event starts its journey again: the fields it had keep their values."""
    state = DeliveryState(redis_client, prefix)
    journey = state.key("jr", "J1")
    await redis_client.hset(journey, mapping={"status": "completed", "step": "2"})
    writes = Writes()
    writes.hsetnx_many(journey, {"status": "active", "step": "0", "round": "1", "名": "王强"})
    writes.hsetnx_many(state.key("jr", "J2"), {"only": "one"})
    new = {"status": "active", "step": "0", "round": "1", "due": "1.5"}  # a hash not there yet
    writes.hsetnx_many(state.key("jr", "J3"), new)
    keys, ops = writes.commands()
    assert [op[0] for op in ops] == ["HSETNX", "HSETNX", "HSETNX"]
    await state.apply(writes)
    assert await redis_client.hgetall(journey) == {
        b"status": b"completed", b"step": b"2", b"round": b"1", "名".encode(): "王强".encode()}  # fmt: skip
    assert await redis_client.hgetall(state.key("jr", "J2")) == {b"only": b"one"}
    assert await redis_client.hgetall(state.key("jr", "J3")) == {
        k.encode(): v.encode() for k, v in new.items()}  # fmt: skip


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


@ON_BOTH_REDIS
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


@ON_BOTH_REDIS
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


def test_a_sent_step_read_from_its_record_is_the_step_that_was_stored_before() -> None:
    from app.core.timestamps import utc_now_ms
    from app.state.writes import read_step, sent_step_of, trace_step, with_sent_step

    for ref in ["outbox-3f9a1c2b", 'a "quoted" \\ ref\n', "回执-1", "\u2028", "x" * 300]:
        for attempt in (1, 6, 12):
            at = utc_now_ms()
            record = {"status": "sent", "updated_at": at, "attempts": str(attempt),
                      "provider_ref": ref, "rule_id": "r"}  # fmt: skip
            stored = read_step(trace_step("attempt", {"attempt": attempt, "outcome": "sent",
                                                      "ref": ref}))  # fmt: skip
            step = sent_step_of(record)
            assert step is not None and step.keys() == stored.keys()
            assert {k: v for k, v in step.items() if k not in ("at", "t")} == {
                k: v for k, v in stored.items() if k not in ("at", "t")}  # fmt: skip
            assert step["at"] == at and read_step(trace_step("x", {}))["at"][:10] == at[:10]
            assert step["t"] == pytest.approx(stored["t"], abs=1.0)
    marked = {"status": "sent", "updated_at": "2026-12-04T08:00:00.123+00:00", "attempts": "2"}
    assert sent_step_of(marked) == {  # the SMTP hook's early mark: no reference yet
        "at": "2026-12-04T08:00:00.123+00:00", "t": 1796371200.123, "step": "attempt",
        "attempt": 2, "outcome": "sent"}  # fmt: skip
    for attempts in ("", "x", "-3", "²", "٣", "9" * 5000, "1.5"):  # a record gone wrong: read
        step = sent_step_of({"status": "sent", "updated_at": "garbage", "attempts": attempts})
        assert step == {"at": "garbage", "step": "attempt", "outcome": "sent", "attempt": 1}
    assert sent_step_of({"status": "sent", "updated_at": "", "attempts": "7"})["attempt"] == 7
    for status in ("planned", "sending", "deferred", "failed", "suppressed", ""):
        assert sent_step_of({"status": status, "updated_at": "x"}) is None
    deferred = [{"step": "deferred", "at": "a"}]
    assert with_sent_step(deferred, marked) == [*deferred, sent_step_of(marked)]
    assert with_sent_step(deferred, {"status": "deferred"}) == deferred
    old = [*deferred, {"step": "attempt", "outcome": "sent", "at": "b"}]  # stored before
    assert with_sent_step(old, marked) == old


@ON_BOTH_REDIS
async def test_the_deferred_queue_parks_releases_and_drops_an_entry_left_without_its_record(
    redis_client, prefix
):
    from app.notifications import Notification
    from app.state.deferred import GHOST_SECONDS

    state = DeliveryState(redis_client, prefix)
    n = Notification(id="N-1", rule_id="r", rule_version=1, category="reminder", event_id="E-1",
                     event_type="t", channel="sms", profile_id="P-1", recipient="P-1",
                     recipient_name=None, role=None, address="+8613800138000", language="zh-CN",
                     planned_at="2026-07-01T00:00:00+00:00")  # fmt: skip
    await state.defer(n, 1000.0, "quiet hours")
    assert await state.status("N-1") == "deferred"
    assert await state.due(999.0) == []
    assert [Notification.from_json(r).id for r in await state.due(1000.0)] == ["N-1"]
    # an entry whose record was never written (a cluster's worker died between the two)
    await redis_client.zadd(state.key("deferred", "all"), {"N-ghost": 900.0, "N-late": 1000.0})
    assert len(await state.due(1000.0)) == 1
    assert await state.deferred_count() == 3  # not yet overdue enough to be dropped
    assert len(await state.due(1000.0 + GHOST_SECONDS + 1)) == 1
    assert await state.deferred_count() == 1
    await state.undefer("N-1")
    assert await state.deferred_count() == 0
    assert await redis_client.exists(state.key("dq", "N-1")) == 0


@ON_BOTH_REDIS
async def test_a_failed_notification_is_reopened_once_per_dead_letter(redis_client, prefix):
    state = DeliveryState(redis_client, prefix)
    assert await state.reopen("N-none", "dlq/0/1") == "unknown"
    await redis_client.hset(state.key("n", "N-1"), mapping={"status": "failed"})
    assert await state.reopen("N-1", "dlq/0/1") == "reopened"
    assert await state.status("N-1") == "planned"
    await redis_client.hset(state.key("n", "N-1"), mapping={"status": "failed"})
    assert await state.reopen("N-1", "dlq/0/1") == "replayed"
    assert await state.reopen("N-1", "dlq/0/2") == "reopened"
    assert (await state.record("N-1"))["replays"] == "2"
    await redis_client.hset(state.key("n", "N-2"), mapping={"status": "sent"})
    assert await state.reopen("N-2", "dlq/0/3") == "sent"
    assert await state.mark_replayed("dlq/0/3")  # a letter not replayed is not marked


@ON_BOTH_REDIS
async def test_planned_notifications_are_remembered_each_and_under_their_event(
    redis_client, prefix
):
    """A chunk's notifications join their event's set in one SADD; a status reached is kept."""
    from app.notifications import Notification

    def planned(nid: str, event_id: str) -> Notification:
        return Notification(id=nid, rule_id="r", rule_version=1, category="warning",
                            event_id=event_id, event_type="t", channel="sms", profile_id="E-1",
                            recipient="E-1", recipient_name=None, role=None,
                            address="+8613800138000", language="zh-CN",
                            planned_at="2026-07-01T00:00:00+00:00")  # fmt: skip

    state = DeliveryState(redis_client, prefix)
    await redis_client.hset(state.key("n", "N-2"), "status", "sent")
    writes = Writes()
    state.add_planned(
        writes, [planned(f"N-{i}", "E-A") for i in range(1, 4)] + [planned("N-9", "E-B")]
    )
    _, ops = writes.commands()
    assert [op[0] for op in ops].count("SADD") == 2
    await state.apply(writes)
    assert await state.notifications_of("E-A") == ["N-1", "N-2", "N-3"]
    assert await state.notifications_of("E-B") == ["N-9"]
    assert 0 < await redis_client.ttl(state.key("ev", "E-A")) <= TRACE_TTL_SECONDS
    assert await state.status("N-1") == "planned" and await state.status("N-2") == "sent"
    record = await redis_client.hgetall(state.key("n", "N-3"))
    assert record[b"recipient"] != b"+8613800138000"  # masked


@ON_BOTH_REDIS
async def test_a_set_of_twenty_thousand_members_is_written_whole(redis_client, prefix):
    """Found in review: one SADD of a large chunk's notification ids overflowed the script's Lua
    stack ("too many results to unpack") and the chunk's record failed."""
    state = DeliveryState(redis_client, prefix)
    key, trace = state.key("ev", "E-BIG"), state.key("tr", "E-BIG")
    writes = Writes()
    writes.sadd(key, *(f"N-{i}" for i in range(20_000)))
    writes.rpush(trace, *(f"step {i}" for i in range(2_500)))
    await state.apply(writes)
    assert await redis_client.scard(key) == 20_000
    assert await redis_client.lrange(trace, 0, -1) == [f"step {i}".encode() for i in range(2_500)]


async def test_a_chunk_of_twenty_thousand_planned_records_is_written_whole(redis_client, prefix):
    """The records of a chunk are one operation of the script (``hset_rows``); twenty thousand
    (a chunk far larger than the fan-out makes) are written, each whole, with its TTL."""
    from app.notifications import Notification

    state = DeliveryState(redis_client, prefix)
    batch = [Notification(id=f"N-{i}", rule_id="r", rule_version=1, category="warning",
                          event_id="E-BIG", event_type="t", channel="sms", profile_id=f"P-{i}",
                          recipient=f"P-{i}", recipient_name=None, role=None,
                          address=f"+86138{i:08d}", language="zh-CN",
                          planned_at="2026-07-01T00:00:00+00:00") for i in range(20_000)]  # fmt: skip
    writes = Writes()
    state.add_planned(writes, batch)
    await state.apply(writes)
    assert len(await state.notifications_of("E-BIG")) == 20_000
    last = await redis_client.hgetall(state.key("n", "N-19999"))
    assert last[b"status"] == b"planned" and last[b"profile"] == b"P-19999"
    assert last[b"recipient"] != b"+8613800019999" and last[b"event_id"] == b"E-BIG"
    assert 0 < await redis_client.ttl(state.key("n", "N-0")) <= TRACE_TTL_SECONDS


async def test_a_batch_s_claims_records_and_opt_outs_are_read_by_one_script(redis_client, prefix):
    """``queue_begin``: each claim tried (one held by another is not taken), each record's
    progress and each address's opt-outs read, in one script call; with ``claim=False`` the
    claims are left as they are."""
    from app.state.writes import Batched

    state = DeliveryState(redis_client, prefix)
    await redis_client.set(state.key("claim", "N-2"), "other", px=60_000)
    await redis_client.hset(state.key("n", "N-2"), mapping={"status": "sending", "attempts": "2",
                                                            "rule_id": "r"})  # fmt: skip
    await redis_client.sadd(f"{prefix}optout:K1", "warning:sms", "reminder:email")
    pipe = Batched(redis_client)
    state.queue_begin(pipe, [("N-1", f"{prefix}optout:K1"), ("N-2", f"{prefix}optout:K2")],
                      "me", 60_000)  # fmt: skip
    [reply] = await pipe.execute()
    assert state.decode_begin(reply) == [
        (True, {}, {"warning:sms", "reminder:email"}),
        (False, {"status": "sending", "attempts": "2"}, set()),
    ]
    assert await redis_client.get(state.key("claim", "N-1")) == b"me"
    assert await redis_client.get(state.key("claim", "N-2")) == b"other"
    assert 0 < await redis_client.pttl(state.key("claim", "N-1")) <= 60_000
    pipe = Batched(redis_client)
    state.queue_begin(pipe, [("N-3", f"{prefix}optout:K2")], "me", 60_000, claim=False)
    [reply] = await pipe.execute()
    assert state.decode_begin(reply) == [(True, {}, set())]
    assert not await redis_client.exists(state.key("claim", "N-3"))
