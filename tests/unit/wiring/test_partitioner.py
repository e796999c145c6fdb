"""The worker's partitioner sends each key where Kafka's default partitioner (aiokafka's,
the Java client's) does, so records keyed alike stay together whichever client produced them."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from kafka.partitioner.default import murmur2 as kafka_python

from wiring.partitioner import KeyPartitioner, murmur2, murmur2_py


def test_murmur2_matches_aiokafka_and_kafka_python_on_every_length() -> None:
    rng = random.Random(14)
    for length in range(0, 70):
        for _ in range(40):
            key = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(key) == murmur2_py(key) == reference(key) == kafka_python(key), key


def test_the_hash_is_the_compiled_one_where_the_wheel_is_installed() -> None:
    import murmurhash2  # a dependency: the Python hash is only a fallback

    assert murmur2 is not murmur2_py
    assert murmur2(b"P-000123") == murmurhash2.murmurhash2(b"P-000123", 0x9747B28C)


def test_the_partitioner_chooses_as_the_default_one() -> None:
    ours, theirs = KeyPartitioner(), DefaultPartitioner()
    rng = random.Random(3)
    for n in (1, 2, 3, 8, 12, 64):
        partitions = list(range(n))
        for i in range(300):
            key = f"{rng.getrandbits(128):032x}".encode() if i % 2 else f"P-{i}".encode()
            assert ours(key, partitions, partitions) == theirs(key, partitions, partitions)
            assert ours(key, partitions, partitions) == ours(key, partitions, [])  # remembered
    partitions = list(range(8))
    assert ours(bytearray(b"P-7"), partitions, partitions) == theirs(b"P-7", partitions, partitions)
    keyless = {ours(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert keyless == {1, 3}  # a keyless record: any available partition
