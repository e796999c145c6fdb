"""Asyncio Kafka clients (aiokafka) for processes that are not Faust workers: a writer, and a
reader of a topic from its start (the console, `lifecycle dlq`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


class KafkaWriter:
    def __init__(self, servers: list[str], client_id: str = "lifecycle-console") -> None:
        self.servers = servers
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.servers, acks="all",
                                          client_id=self.client_id)  # fmt: skip
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        """Publish (key, value) pairs, each acknowledged by the broker; how many."""
        if self._producer is None:
            raise RuntimeError("KafkaWriter.start() has not been called")
        futures = [await self._producer.send(topic, value=value, key=key) for key, value in records]
        for future in futures:
            await future
        return len(futures)


async def read_from_start(servers: list[str], topics: Iterable[str], *, timeout: float = 30.0,
                          max_records: int | None = None) -> AsyncIterator[Any]:  # fmt: skip
    """Every record of ``topics`` from the beginning to the end they had when this began (no
    consumer group: nothing is committed, so reading never changes what another reader sees).
    Stops after ``timeout`` seconds or ``max_records`` records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)  # fmt: skip
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(t, p) for t in topics
               for p in sorted(consumer.partitions_for_topic(t) or ())]  # fmt: skip
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        read, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            [await consumer.position(tp) < end[tp] for tp in tps]
        ):
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    yield record
                    read += 1
                    if max_records is not None and read >= max_records:
                        return
    finally:
        await consumer.stop()
