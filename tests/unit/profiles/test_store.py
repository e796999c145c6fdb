"""The compact stored form and the bitmap indexes: what is stored reads back as it was, every
index query agrees with a direct filter of the profiles, across chunk and batch boundaries."""

import json
import random

import pytest

from app.profiles import store as store_module
from app.profiles.codec import decode, encode, number_of
from app.profiles.store import ProfileStore, set_bits
from app.profiles.validate import index_terms, parse_profile
from tests.helpers import ON_BOTH_REDIS, contact, enterprise, person

PROFILES = [
    person("P-1", mobile="13800138000", email="a@b.cn"),
    person("P-2", language="en") | {"tags": ["elderly", "graduate"], "preferences": {"quiet_hours": {"from": "22:00", "to": "07:00"}}},
    person("P-3") | {"location": {"lat": 22.58, "lon": 114.26}, "name": "名字\u202e"},
    enterprise("E-1", permits=("outdoor_advertising", "hazardous_goods"),
               contacts=[contact("safety_officer", "13900139000", email="s@e.cn"),
                         {"role": "legal_representative", "email": "l@e.cn"},
                         {"role": "clerk"}]),
    enterprise("E-2") | {"credit_code": "91440300MA5EU3NY2D", "industry": None},
]  # fmt: skip


@pytest.mark.parametrize("doc", PROFILES, ids=lambda d: d["id"])
def test_the_stored_form_reads_back_as_the_profile_and_is_smaller(doc):
    profile = parse_profile(doc)
    stored = encode(profile, 12345)
    assert decode(stored, profile["id"]) == profile
    assert number_of(stored) == 12345
    assert len(stored.encode()) < len(json.dumps(profile, ensure_ascii=False).encode())


def test_a_profile_stored_before_the_compact_form_still_reads():
    profile = parse_profile(PROFILES[3])
    old = json.dumps(profile, ensure_ascii=False, sort_keys=True)
    assert decode(old, "E-1") == profile
    assert number_of(old) is None


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30, 1.5, 2**53 + 1])
def test_a_number_in_the_preferences_reads_back_exactly_however_large(number):
    """orjson, which reads stored profiles, reads an integer beyond 64 bits as a float."""
    profile = parse_profile(person("P-9") | {"preferences": {"n": number, "deep": [{"m": number}]}})
    for stored in (encode(profile, 7), json.dumps(profile)):  # compact, and as stored before
        back = decode(stored, "P-9")
        assert back == profile
        exact = json.dumps(back["preferences"], sort_keys=True)  # 10**30, not 1e+30
        assert exact == json.dumps(profile["preferences"], sort_keys=True)


def test_a_stored_value_orjson_refuses_reads_as_before():
    stored = encode(parse_profile(person("P-8")), 3).replace('"n":"', '"n":"\\ud800', 1)
    assert decode(stored, "P-8")["name"].startswith("\ud800")  # a lone surrogate: json reads it


def test_set_bits_reads_redis_bit_order():
    data = bytes([0b10000001, 0, 0b01000000])
    assert set_bits(data) == [0, 7, 17]
    assert set_bits(data, 800) == [800, 807, 817]
    rng = random.Random(7)
    offsets = sorted(rng.sample(range(4096), 300))
    bitmap = bytearray(512)
    for o in offsets:
        bitmap[o // 8] |= 0x80 >> (o % 8)
    assert set_bits(bytes(bitmap)) == offsets


async def all_ids(store, **query):
    batches = [batch async for batch in store.select(**query)]
    return batches, sorted(i for b in batches for i in b)


@ON_BOTH_REDIS
async def test_index_queries_equal_a_direct_filter_across_read_chunks_and_batches(
    redis_client, prefix, monkeypatch
):
    monkeypatch.setattr(store_module, "READ_BYTES", 3)  # 24 profiles a read
    monkeypatch.setattr(store_module, "BATCH", 7)
    rng = random.Random(11)
    districts = ["440303", "440308", "440305", "110101"]
    docs = [enterprise(f"E{i}", district=rng.choice(districts),
                       permits=tuple(p for p in ("outdoor_advertising", "construction") if rng.random() < 0.4))
            if i % 3 else person(f"P{i}", district=rng.choice(districts)) for i in range(200)]  # fmt: skip
    store = ProfileStore(redis_client, prefix)
    await store.insert_new([parse_profile(d) for d in docs[:120]])
    for d in docs[120:]:
        await store.upsert(parse_profile(d))
    profiles = {d["id"]: index_terms(parse_profile(d)) for d in docs}
    for all_of, any_of in [
        (["kind:enterprise", "permit:outdoor_advertising"], ["area:440308", "area:440303"]),
        (["kind:person"], []),
        (["permit:construction"], ["area:440300"]),
        ([], ["area:110000"]),
        (["permit:nobody_has_this"], []),
    ]:
        batches, found = await all_ids(store, all_of=all_of, any_of=any_of)
        expected = sorted(pid for pid, terms in profiles.items()
                          if set(all_of) <= terms and (not any_of or terms & set(any_of)))  # fmt: skip
        assert found == expected, (all_of, any_of)
        assert all(len(b) <= 7 for b in batches)
    assert not [k async for k in redis_client.scan_iter(f"{prefix}*tmp:*")]


@ON_BOTH_REDIS
async def test_a_profile_keeps_its_number_moves_between_bitmaps_and_leaves_none_when_deleted(
    redis_client, prefix
):
    store = ProfileStore(redis_client, prefix)
    located = parse_profile(person("P-1") | {"location": {"lat": 22.58, "lon": 114.26}})
    assert await store.upsert(located) == "inserted"
    assert await store.upsert(located) == "unchanged"
    number = number_of(await redis_client.get(store.key("P-1")))
    circle = [{"lat": 22.58, "lon": 114.26, "radius_km": 1}]
    assert await store.within([], circle, ["kind:person"]) == ["P-1"]
    moved = parse_profile(person("P-1", district="440303"))  # and no location now
    assert await store.upsert(moved) == "updated"
    assert number_of(await redis_client.get(store.key("P-1"))) == number
    assert (await all_ids(store, all_of=["area:440308"]))[1] == []
    assert (await all_ids(store, all_of=["area:440303"]))[1] == ["P-1"]
    assert await store.within([], circle, []) == []
    assert await store.term_exists("area", "440303")
    assert await store.delete("P-1") is True
    assert await store.delete("P-1") is False
    assert not await store.term_exists("area", "440303")
    assert await store.terms("area") == []
    assert await redis_client.hlen(store._bucket(number, store.group_of("P-1"))) == 0
    assert await store.upsert(located) == "inserted"  # a new number: numbers are never reused
    assert number_of(await redis_client.get(store.key("P-1"))) == number + 1
    assert await store.within([], circle, ["kind:person"]) == ["P-1"]


@ON_BOTH_REDIS
async def test_a_profile_stored_before_numbers_gets_one_when_it_is_next_written(
    redis_client, prefix
):
    store = ProfileStore(redis_client, prefix)
    profile = parse_profile(PROFILES[3])
    await redis_client.set(store.key("E-1"), json.dumps(profile, ensure_ascii=False))
    assert await store.get("E-1") == profile
    assert await store.upsert(profile) == "updated"
    assert (await all_ids(store, all_of=["permit:hazardous_goods"]))[1] == ["E-1"]


@ON_BOTH_REDIS
async def test_a_bulk_load_that_names_an_id_twice_stores_it_once(redis_client, prefix):
    store = ProfileStore(redis_client, prefix)
    await store.insert_new([parse_profile(enterprise("E-1", permits=("construction",))),
                            parse_profile(enterprise("E-1", district="440303"))])  # fmt: skip
    assert (await all_ids(store, all_of=["kind:enterprise"]))[1] == ["E-1"]
    assert (await all_ids(store, all_of=["permit:construction"]))[1] == []
    assert (await store.get("E-1"))["district"] == "440303"
