"""Many records produced at once: one aiokafka batch per partition, not one ``send`` a record.

``AIOKafkaProducer.send`` does, for every record, what a batch of them needs once: it checks the
metadata, finds the partition's open batch, appends, and makes an asyncio future; and the
sender, draining as records come, sends many small batches. For the `deliveries` records of a
batch of notifications (two a recipient) and a plan's notifications, filling the producer's own
batch builders and handing each over with ``send_batch`` costs 5.2 µs of CPU a record, against
14.2 with ``send`` (``python -m bench.produce``, with the worker's 256 KB batches).

The records land where ``send`` would have put them: the partition comes from the producer's own
partitioner, and records of one key keep their order (one builder per partition, filled in
order, handed over in order; aiokafka queues a batch behind the partition's pending one). They are buffered like ``send``'s: the producer is flushed before Faust commits
offsets, so a crash before the flush redelivers the input that produced them.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

LARGE_BYTES = 8 * 1024  # a record larger goes through ``send``, which checks it against the limits


async def send_many(
    producer: AIOKafkaProducer, records: Sequence[tuple[str, bytes | None, bytes | None]]
) -> None:
    """Buffer ``records`` (topic, key, value) for sending, as ``producer.send`` would each, in
    order; return once they are buffered. A record over LARGE_BYTES goes through ``send`` itself
    (a batch's first record is taken whatever its size; ``send`` refuses one over the request
    limit), after what the batch of its partition held before it."""
    if not records:
        return
    grouped: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    partitions: dict[str, tuple[list[int], list[int]]] = {}
    choose = producer._partitioner  # what ``send`` asks, with what it gives (its ``_partition``)
    for topic, key, value in records:
        if (known := partitions.get(topic)) is None:
            await producer.client._wait_on_metadata(topic)  # as send does; once a topic here
            metadata = producer._metadata
            known = partitions[topic] = (list(metadata.partitions_for_topic(topic)),
                                         list(metadata.available_partitions_for_topic(topic)))  # fmt: skip
        grouped.setdefault((topic, choose(key, *known)), []).append((key, value))
    for (topic, partition), items in grouped.items():
        builder = producer.create_batch()
        for key, value in items:
            if len(key or b"") + len(value or b"") > LARGE_BYTES:
                if builder.record_count():
                    await producer.send_batch(builder, topic, partition=partition)
                    builder = producer.create_batch()
                await producer.send(topic, value, key=key, partition=partition)
                continue
            if builder.append(key=key, value=value, timestamp=None) is None:  # full
                await producer.send_batch(builder, topic, partition=partition)
                builder = producer.create_batch()
                builder.append(key=key, value=value, timestamp=None)  # a batch's first fits
        if builder.record_count():
            await producer.send_batch(builder, topic, partition=partition)
