"""What a worker can do right now: Redis, Kafka and each gateway, checked; and the group's lag.

``/health/`` answers 503 when the worker cannot deliver (Redis or Kafka unreachable, or a
channel's gateway not answering); ``/metrics`` sets ``lifecycle_gateway_up``, ``lifecycle_consumer_lag`` and
``lifecycle_held_sends`` from the same checks. Checks are made when asked, at most every
``CACHE_SECONDS``, so a scrape and a health probe together open one SMTP connection, not two.

Lag is measured against each partition's end offset asked of the broker at that moment (a plain
consumer with no group: it reads nothing and commits nothing), minus the group's committed offset
(the admin client's OffsetFetch). An idle partition therefore reads 0, never a stale end, and a
stopped worker's lag is still reported by the others, or by a worker started later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.exceptions import RedisClusterException, RedisError

logger = logging.getLogger(__name__)

CACHE_SECONDS = 2.0
# the topics the worker's agents consume (``topics.SOURCES`` is built from these names): their lag
SOURCE_TOPICS = ("life-events", "profiles", "fanout", "notifications", "notifications-warning")
TIMEOUT_SECONDS = 3.0


@dataclass
class Health:
    redis: str = "unknown"
    kafka: str = "unknown"
    gateways: dict[str, str] = field(default_factory=dict)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    held: int | None = None
    deferred: int | None = None
    at: float = 0.0

    @property
    def can_deliver(self) -> bool:
        """Everything a delivery needs answers: Redis, Kafka and every channel's gateway (a
        worker whose SMTP server is down cannot deliver what is due by e-mail)."""
        return (self.redis == "ok" and self.kafka == "ok"
                and all(v == "ok" for v in self.gateways.values()))  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.can_deliver else "unavailable", "redis": self.redis,
                "kafka": self.kafka, "gateways": self.gateways}  # fmt: skip


class Probe:
    """Checks the services of one worker (``runtime``) for ``group``'s ``topics``."""

    def __init__(self, servers: list[str], group: str, topics: list[str]) -> None:
        self.servers = servers
        self.group = group
        self.topics = topics
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._last = Health()
        self._lock = asyncio.Lock()

    async def check(self, runtime: Any) -> Health:
        async with self._lock:
            if time.monotonic() - self._last.at < CACHE_SECONDS:
                return self._last
            health = Health(at=time.monotonic())
            await asyncio.gather(self._redis(runtime, health), self._kafka(health),
                                 self._gateways(runtime, health))  # fmt: skip
            self._last = health
            return health

    async def _redis(self, runtime: Any, health: Health) -> None:
        try:
            await asyncio.wait_for(runtime.redis.ping(), TIMEOUT_SECONDS)
            health.redis = "ok"
            health.held = len(await runtime.guard.held())
            health.deferred = await runtime.state.deferred_count()
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            health.redis = f"unavailable: {type(exc).__name__}"

    async def _gateways(self, runtime: Any, health: Health) -> None:
        gateways = runtime.deliverer.gateways if runtime.deliverer is not None else {}

        async def one(channel: str, gateway: Any) -> None:
            check = getattr(gateway, "check", None)
            try:
                why = await asyncio.wait_for(check(), TIMEOUT_SECONDS + 1) if check else None
            except Exception as exc:  # noqa: BLE001 - a check that fails says the gateway is down
                why = f"check failed: {type(exc).__name__}"
            health.gateways[channel] = "ok" if why is None else why

        await asyncio.gather(*(one(c, g) for c, g in sorted(gateways.items())))

    async def _kafka(self, health: Health) -> None:
        try:
            health.lag = await asyncio.wait_for(self._lag(), TIMEOUT_SECONDS * 2)
            health.kafka = "ok"
        except Exception as exc:  # noqa: BLE001 - whatever the client raises, Kafka is not usable
            health.kafka = f"unavailable: {type(exc).__name__}"
            await self.close()  # a fresh client next time

    async def _lag(self) -> dict[tuple[str, int], int]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False,
                                        client_id="lifecycle-probe")  # fmt: skip
            admin = AIOKafkaAdminClient(bootstrap_servers=self.servers, client_id="lifecycle-probe")
            await consumer.start()
            await admin.start()
            self._consumer, self._admin = consumer, admin
        assert self._consumer is not None and self._admin is not None
        partitions = [TopicPartition(topic, number) for topic in self.topics
                      for number in sorted(self._consumer.partitions_for_topic(topic) or ())]  # fmt: skip
        if not partitions:
            return {}
        # partitions named: an OffsetFetch for "all of the group's" is not served by every broker
        committed = await self._admin.list_consumer_group_offsets(self.group, partitions=partitions)
        ends = await self._consumer.end_offsets(partitions)
        starts = await self._consumer.beginning_offsets(partitions)
        lag = {}
        for tp in partitions:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts.get(tp, 0)
            lag[tp.topic, tp.partition] = max(0, ends.get(tp, 0) - position)
        return lag

    async def close(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        for client in (consumer, admin):
            if client is not None:
                try:
                    await client.stop() if isinstance(
                        client, AIOKafkaConsumer
                    ) else await client.close()
                except Exception:  # noqa: BLE001 - closing a broken client
                    logger.debug("closing the probe's Kafka client failed", exc_info=True)


_probes: dict[tuple[str, ...], Probe] = {}


def probe_for(settings: Any) -> Probe:
    """This process's probe of the group's SOURCE_TOPICS (one per broker address: the checks'
    cache and Kafka clients are shared by /health/, /metrics, the dashboard and the watch)."""
    from wiring.faust_app import APP_ID

    key = tuple(settings.kafka_servers)
    if key not in _probes:
        _probes[key] = Probe(settings.kafka_servers, APP_ID, list(SOURCE_TOPICS))
    return _probes[key]


async def close_probes() -> None:
    """Close every probe's Kafka clients (a process that made probes, as it stops)."""
    probes = list(_probes.values())
    _probes.clear()
    for probe in probes:
        await probe.close()
