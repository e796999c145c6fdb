"""``Writes``: a batch's TTLs and last-value fields are written once, after its other writes."""

from __future__ import annotations

from app.state.writes import Store, Writes


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
