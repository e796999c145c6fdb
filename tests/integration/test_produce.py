"""Records produced a batch at a time (``wiring.produce.send_many``) land where ``send`` puts
them, each once, a key's records in their order, on a real broker (the embedded one)."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer

from devstack.stack import Broker
from tests.helpers import read_topic
from wiring.faust_app import PRODUCER_BATCH_BYTES
from wiring.kafka import ensure_topics
from wiring.partitioner import KeyPartitioner
from wiring.produce import LARGE_BYTES, send_many


@pytest.mark.parametrize("batch_bytes", [16 * 1024, PRODUCER_BATCH_BYTES])  # aiokafka's, ours
async def test_records_land_as_send_puts_them_each_once_in_order(
    broker: Broker, batch_bytes: int
) -> None:
    bootstrap = broker.url.removeprefix("kafka://")
    names = [f"produce-{name}-{batch_bytes}" for name in ("batched", "single", "other")]
    ensure_topics([bootstrap], names, 6)
    batched, single_topic, other_topic = names
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, partitioner=KeyPartitioner(),
                                max_batch_size=batch_bytes)  # fmt: skip
    await producer.start()
    rng = random.Random(11)
    keys = [f"n-{rng.getrandbits(64):016x}".encode() for _ in range(300)]
    records: list[tuple[str, bytes | None, bytes | None]] = []
    count = max(3000, 2 * 6 * batch_bytes // 200)  # two batches' worth a partition at least
    for i in range(count):  # keys interleaved
        key = keys[i % len(keys)]
        records.append((batched, key, f"{i}:{'x' * rng.randrange(50, 400)}".encode()))
        if i % 500 == 7:  # a record larger than a batch would take, amid the others
            records.append((batched, key, f"{i}L:".encode() + b"y" * (LARGE_BYTES * 3)))
        if i % 10 == 0:
            records.append((other_topic, key, f"{i}".encode()))
    try:
        await send_many(producer, records)
        for key in keys:
            await producer.send(single_topic, b"-", key=key)
        await producer.flush()
    finally:
        await producer.stop()

    got = await read_topic(bootstrap, batched)
    single = {r.key: r.partition for r in await read_topic(bootstrap, single_topic)}
    wanted = [(k, v) for t, k, v in records if t == batched]
    assert sorted((r.key, r.value) for r in got) == sorted(wanted)  # each once, none lost
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        assert r.partition == single[r.key], "not where send puts the key"
        by_key[r.key].append(r.value)
    for key, values in by_key.items():
        assert values == [v for k, v in wanted if k == key], "a key's records out of order"
    other = await read_topic(bootstrap, other_topic)
    assert sorted(r.value for r in other) == sorted(v for t, _, v in records if t == other_topic)
    assert all(r.partition == single[r.key] for r in other)


async def test_nothing_to_send_sends_nothing(broker: Broker) -> None:
    bootstrap = broker.url.removeprefix("kafka://")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await send_many(producer, [])
    finally:
        await producer.stop()
