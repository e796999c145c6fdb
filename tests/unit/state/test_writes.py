"""``Writes``: a batch's TTLs and last-value fields are written once, after its other writes."""

from __future__ import annotations

import pytest

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


@ON_BOTH_REDIS
async def test_rows_write_each_hash_as_its_own_writes_would(redis_client, prefix):
    """``hset_rows``: a chunk's records in one operation end as one HSETNX, HSET and EXPIRE
    each (first-absent), or one ``hset_kept`` each, would leave them; on a cluster the rows
    are split by slot (the keys' hash tags put each record in a slot of its own)."""
    store = Store(redis_client, prefix)
    ids = [f"N-{i}" for i in range(40)]
    mine, theirs = ({i: store.key("n", f"{side}{i}") for i in ids} for side in ("a-", "b-"))
    for keys in (mine, theirs):  # a record already sent keeps its status; one has a TTL
        await redis_client.hset(keys["N-3"], mapping={"status": "sent", "attempts": "1"})
        await redis_client.hset(keys["N-5"], mapping={"status": "planned", "rule_id": "r"})
        await redis_client.expire(keys["N-5"], 100)
    common = {"status": "planned", "rule_id": "r", "event_id": "E", "channel": "sms"}
    own = {i: (f"+86 138****{n:04d}", f"P-{n}") for n, i in enumerate(ids)}
    by_rows, one_by_one = Writes(), Writes()
    by_rows.hset_rows([(mine[i], own[i]) for i in ids], common, ("recipient", "profile"), 5000,
                      first_absent=True)  # fmt: skip
    for i in ids:
        one_by_one.hsetnx(theirs[i], "status", "planned")
        one_by_one.hset(theirs[i], {**{k: v for k, v in common.items() if k != "status"},
                                    "recipient": own[i][0], "profile": own[i][1]})  # fmt: skip
        one_by_one.expire(theirs[i], 5000)
    later_rows, later_one = Writes(), Writes()  # then a status: the TTL stays the planning's
    later_rows.hset_rows([(mine[i], ("2", f"ref-{i}")) for i in ids[:30]],
                         {"status": "sent", "updated_at": "T"}, ("attempts", "provider_ref"), 9000)  # fmt: skip
    for i in ids[:30]:
        later_one.hset_kept(theirs[i], {"status": "sent", "updated_at": "T", "attempts": "2",
                                        "provider_ref": f"ref-{i}"}, 9000)  # fmt: skip
    fresh_rows, fresh_one = Writes(), Writes()  # a status on a record not there: it expires
    fresh_rows.hset_rows([(store.key("n", "a-new"), ("1",))], {"status": "sending"},
                         ("attempts",), 9000)  # fmt: skip
    fresh_one.hset_kept(store.key("n", "b-new"), {"status": "sending", "attempts": "1"}, 9000)
    for writes in (by_rows, one_by_one, later_rows, later_one, fresh_rows, fresh_one):
        await store.apply(writes)
    for i in [*ids, "new"]:
        a, b = store.key("n", f"a-{i}"), store.key("n", f"b-{i}")
        assert await redis_client.hgetall(a) == await redis_client.hgetall(b), i
        ttl_a, ttl_b = await redis_client.ttl(a), await redis_client.ttl(b)
        assert abs(ttl_a - ttl_b) <= 1, (i, ttl_a, ttl_b)
    assert (await redis_client.hgetall(mine["N-3"]))[b"status"] == b"sent"
    assert 4900 < await redis_client.ttl(mine["N-5"]) <= 5000  # first-absent: always set
    assert 4900 < await redis_client.ttl(mine["N-7"]) <= 5000  # kept from its planning
    assert 8900 < await redis_client.ttl(store.key("n", "a-new")) <= 9000


def test_rows_refuse_what_the_script_could_not_write():
    writes = Writes()
    with pytest.raises(ValueError, match="2 values for 1 fields"):
        writes.hset_rows([("n:1", ("a", "b"))], {"status": "sent"}, ("attempts",), 10)
    with pytest.raises(ValueError, match="no field"):
        writes.hset_rows([("n:1", ())], {}, (), 10)
    with pytest.raises(ValueError, match="needs a common field"):
        writes.hset_rows([("n:1", ("x",))], {}, ("recipient",), 10, first_absent=True)
    writes.hset_rows([], {"status": "sent"}, ("attempts",), 10)  # no rows: no operation
    assert writes.commands() == ([], [])


def test_rows_split_by_slot_keep_each_slot_s_order():
    """On a cluster one HSET* becomes one a slot, placed where its slot's first row was: a
    slot's earlier writes stay before it, its later ones after."""
    from app.core.redis_client import slot
    from app.state.writes import by_slot

    a, b = "x:{a}:n", "x:{b}:n"
    assert slot(a) != slot(b)
    writes = Writes()
    writes.hset(b, {"before": "1"})
    writes.hset_rows([(a, ("1",)), (b, ("2",)), (a + "2", ("3",))], {"s": "v"}, ("f",), 60)
    writes.hset(a, {"after": "1"})
    groups = dict((tuple(k), ops) for k, ops in by_slot(*writes.commands()))
    assert groups[(b,)] == [["HSET", 1, "before", "1"],
                            ["HSET*", 0, "kept", "60", 2, "s", "v", 1, "f", 1, "2"]]  # fmt: skip
    assert groups[(a, a + "2")] == [["HSET*", 0, "kept", "60", 2, "s", "v", 1, "f", 1, "1", 2, "3"],
                                    ["HSET", 1, "after", "1"]]  # fmt: skip
