"""``Writes``: a batch's TTLs and last-value fields are written once, after its other writes."""

from __future__ import annotations

from app.state.writes import Store, Writes
from tests.helpers import ON_BOTH_REDIS


def test_a_key_s_ttl_is_set_once_after_the_writes_the_last_given_winning():
    writes = Writes()
    writes.hset("n:1", {"status": "planned"})
    writes.expire("n:1", 100)
    writes.rpush("tr:1", "step")
    writes.expire("tr:1", 50)
    writes.hset("n:1", {"status": "sending"})
    writes.expire("n:1", 200)
    writes.hincrby("stats", "sent", 1)
    keys, ops = writes.commands()
    names = [(op[0], keys[int(op[1]) - 1]) for op in ops]
    assert names == [("HSET", "n:1"), ("RPUSH", "tr:1"), ("HSET", "n:1"),
                     ("EXPIRE", "n:1"), ("EXPIRE", "tr:1"), ("HINCRBY", "stats")]  # fmt: skip
    assert ops[3][2:] == ["200"] and ops[4][2:] == ["50"]
    assert writes.commands()[1] == ops  # taken once: nothing added again


def test_a_field_every_event_sets_alike_is_one_hset():
    writes = Writes()
    for window in ("86400", "86400", "172800"):
        writes.hset_last("oc:versions", "rule-a|1", window)
    writes.hset_last("oc:versions", "rule-b|3", "60")
    keys, ops = writes.commands()
    assert ops == [["HSET", 1, "rule-a|1", "172800", "rule-b|3", "60"]] and keys == ["oc:versions"]


async def test_applied_the_keys_hold_the_values_and_the_last_ttl(redis_client, prefix):
    store = Store(redis_client, prefix)
    writes = Writes()
    record, trace = store.key("n", "1"), store.key("tr", "1")
    writes.hset(record, {"status": "planned"})
    writes.expire(record, 100)
    writes.rpush(trace, "a", "b")
    writes.expire(trace, 50)
    writes.hset(record, {"status": "sent"})
    writes.expire(record, 1000)
    writes.hset_last(store.key("oc", "versions"), "r|1", "5")
    await store.apply(writes)
    assert await redis_client.hgetall(record) == {b"status": b"sent"}
    assert await redis_client.lrange(trace, 0, -1) == [b"a", b"b"]
    assert 900 < await redis_client.ttl(record) <= 1000 and 40 < await redis_client.ttl(trace) <= 50
    assert await redis_client.hgetall(store.key("oc", "versions")) == {b"r|1": b"5"}


@ON_BOTH_REDIS
async def test_a_kept_hset_sets_the_ttl_only_on_a_hash_it_makes(redis_client, prefix):
    store = Store(redis_client, prefix)
    planned, fresh, bare = (store.key("n", i) for i in ("planned", "fresh", "bare"))
    await redis_client.hset(planned, mapping={"status": "planned", "rule_id": "r"})
    await redis_client.expire(planned, 100)
    await redis_client.hset(bare, mapping={"status": "planned"})  # no TTL: none of its own
    writes = Writes()
    writes.hset_kept(planned, {"status": "sending", "attempts": 1}, 5000)  # one field new
    writes.hset_kept(fresh, {"status": "sent", "attempts": "1", "provider_ref": "x"}, 5000)
    writes.hset_kept(bare, {"status": "sent"}, 5000)
    writes.hset_kept(store.key("n", "none"), {}, 5000)  # nothing: not an HSET Redis refuses
    await store.apply(writes)
    assert await redis_client.hgetall(planned) == {b"status": b"sending", b"rule_id": b"r",
                                                   b"attempts": b"1"}  # fmt: skip
    assert 0 < await redis_client.ttl(planned) <= 100  # kept: the planning's, not refreshed
    assert await redis_client.hgetall(fresh) == {b"status": b"sent", b"attempts": b"1",
                                                 b"provider_ref": b"x"}  # fmt: skip
    assert 4900 < await redis_client.ttl(fresh) <= 5000  # made here: it expires
    assert await redis_client.ttl(bare) == -1  # an existing field: left as it was
    assert not await redis_client.exists(store.key("n", "none"))
