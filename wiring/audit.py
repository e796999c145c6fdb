"""Writing and reading the audit log on Kafka (``app.access.audit``), with aiokafka."""

from __future__ import annotations

import logging
from datetime import datetime

from app.access.audit import AUDIT_TOPIC, AuditEntry
from wiring.kafka_async import KafkaWriter, read_from_start

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
        entries: list[AuditEntry] = []
        async for record in read_from_start(self.servers, [self.topic], timeout=15):
            try:
                entry = AuditEntry.from_json(record.value or b"")
            except (ValueError, TypeError):
                logger.warning("an unreadable audit record at %s/%s/%s",
                               record.topic, record.partition, record.offset)  # fmt: skip
                continue
            if since is None or datetime.fromisoformat(entry.at) >= since:
                entries.append(entry)
        entries.sort(key=lambda e: e.at)
        return entries[-limit:]
