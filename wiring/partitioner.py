"""Which partition a keyed record goes to: Kafka's default (murmur2 of the key, as the Java
client and kafka-python compute it), made cheaper for the worker's producer.

aiokafka's ``murmur2`` is pure Python, byte by byte: some 10 µs for a notification id, paid for
every `deliveries` record (two a recipient) and every planned notification, some 4 % of a
warning recipient's worker CPU (py-spy, bench.fanout --profile). This one is the compiled
MurmurHash2 of the ``murmurhash2`` wheel (Rust, through pyo3), with Kafka's seed (0.1 µs a
notification id); where that wheel is not installed, ``murmur2_py``, which reads the key's
4-byte words with one ``struct`` call (3.5 µs). The last few thousand keys are remembered too
(a notification's "sending" and "sent" share theirs). Same partitions, so records keyed alike
stay together whichever client produced them (both tested against aiokafka's own).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C  # Kafka's


def murmur2_py(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), unsigned, as aiokafka's."""
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    rest = length & 3
    tail = length & ~3
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


try:
    from murmurhash2 import murmurhash2 as _c_murmurhash2
except ImportError:  # no wheel for this platform: the same hash in Python
    murmur2 = murmur2_py
else:

    def murmur2(data: bytes) -> int:
        """Kafka's murmur2, as ``murmur2_py`` computes it, compiled."""
        return _c_murmurhash2(data, _SEED)


@lru_cache(maxsize=4096)
def _index(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """aiokafka's ``DefaultPartitioner``, with the cheaper hash: a keyless record goes to a
    random available partition."""

    def __call__(self, key: bytes | None, all_partitions: Sequence[int],
                 available: Sequence[int]) -> int:  # fmt: skip
        if key is None:
            return random.choice(available or all_partitions)  # noqa: S311 - spreading, not secrets
        raw = key if type(key) is bytes else bytes(key)  # a bytearray cannot be remembered
        return all_partitions[_index(raw, len(all_partitions))]
