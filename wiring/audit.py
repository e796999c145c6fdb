"""Writing and reading the audit log on Kafka (``app.access.audit``), with aiokafka."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.access.audit import AUDIT_TOPIC, AuditEntry
from wiring.kafka_async import KafkaWriter

logger = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, writer: KafkaWriter, topic: str = AUDIT_TOPIC) -> None:
        self.writer = writer
        self.servers = writer.servers
        self.topic = topic

    async def write(self, entry: AuditEntry) -> None:
        """Append ``entry``, acknowledged by the broker before this returns (an action that
        cannot be recorded fails with it, never done unrecorded)."""
        await self.writer.send(self.topic, [entry.to_record()])

    async def read(self, since: datetime | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Entries from ``since`` on (all when None), oldest first, at most ``limit`` (the newest)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(self.topic, p)
                   for p in sorted(consumer.partitions_for_topic(self.topic) or ())]  # fmt: skip
            if not tps:
                return []
            consumer.assign(tps)
            end = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            if since is not None:
                starts = await consumer.offsets_for_times(
                    {tp: int(since.timestamp() * 1000) for tp in tps}
                )
                for tp, found in starts.items():
                    if found is None:
                        consumer.seek(tp, end[tp])
                    else:
                        consumer.seek(tp, found.offset)
            entries: list[AuditEntry] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(
                [await consumer.position(tp) < end[tp] for tp in tps]
            ):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        try:
                            entries.append(AuditEntry.from_json(record.value or b""))
                        except (ValueError, TypeError):
                            logger.warning("an unreadable audit record at %s/%s/%s",
                                           record.topic, record.partition, record.offset)  # fmt: skip
            if since is not None:  # the broker's time index is a hint: a broker may not keep one
                entries = [e for e in entries if datetime.fromisoformat(e.at) >= since]
            entries.sort(key=lambda e: e.at)
            return entries[-limit:]
        finally:
            await consumer.stop()
