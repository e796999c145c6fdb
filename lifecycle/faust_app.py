"""The Faust application object, configured from Settings when a worker starts.

Topics and agents are declared against ``app`` at import time; ``configure`` applies the
broker, partitions and web port before the worker starts, and ``runtime()`` gives agents the
services (Redis, rules, gateways) built for this process.
"""

from __future__ import annotations

import warnings
from typing import Any

import faust
from faust.exceptions import AlreadyConfiguredWarning

from app.runtime import Runtime
from app.settings import Settings

APP_ID = "lifecycle-notify"

app = faust.App(APP_ID, autodiscover=False, store="memory://")

_runtime: Runtime | None = None


def faust_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker": settings.kafka_url,
        "store": "memory://",
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "web_port": settings.web_port,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        # A lost worker is noticed within 10 s; a join waits at most 6 s for stragglers.
        "broker_session_timeout": 10.0,
        "broker_rebalance_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
    }


def limit_fetch_wait(max_wait_ms: int) -> None:
    """Faust creates its consumers with ``fetch_max_wait_ms=1500`` and offers no setting for it.
    A broker that holds a fetch for the whole wait when little data arrives (the embedded broker
    does: measured 422 ms median per hop at 1500, 3 ms at 100) then adds that to every hop. The
    consumer only passes the value on when it starts, so it is set right after creation."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "limited", False):
        return

    def create_limited(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    create_limited.limited = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_limited  # type: ignore[method-assign]


def configure(settings: Settings, runtime: Runtime) -> faust.App:
    """Apply ``settings`` to the app and install the runtime the agents use."""
    global _runtime
    limit_fetch_wait(settings.fetch_max_wait_ms)
    with warnings.catch_warnings():
        # Topics and agents are declared before configuration on purpose; none of them has
        # captured a setting yet (partitions are resolved when the topics are declared).
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.config_from_object(faust_config(settings), force=True)
    _runtime = runtime
    return app


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("lifecycle.faust_app.configure() has not been called")
    return _runtime
