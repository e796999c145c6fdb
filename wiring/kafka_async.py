"""An asyncio Kafka writer (aiokafka) for processes that are not Faust workers: the console."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaProducer


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
