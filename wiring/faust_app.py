"""The Faust application object, configured from Settings when a worker starts.

Topics and agents are declared against ``app`` at import time; ``configure`` checks the Faust
version, applies the patches (``wiring.faust_patches``), the broker, partitions and web port
before the worker starts, and ``runtime()`` gives agents the services (Redis, rules, gateways)
built for this process.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import faust
from faust.exceptions import AlreadyConfiguredWarning

from app.core.settings import Settings
from wiring import faust_patches
from wiring.faust_patches import LeanMonitor
from wiring.partitioner import KeyPartitioner
from wiring.runtime import Runtime

APP_ID = "lifecycle-notify"

app = faust.App(APP_ID, autodiscover=False, store="memory://")

_runtime: Runtime | None = None
PRODUCER_BATCH_BYTES = 256 * 1024


def data_dir() -> str:
    """Faust's data directory, which it makes at start-up (``App._create_directories``) and where
    it would keep tables on disk; with the memory store it stays empty. Faust's default is
    ``{app id}-data`` in the working directory, which the container's user may not write
    (/srv/lifecycle is root's: the worker would stop at start-up with PermissionError) and which
    littered a checkout. So the system's temporary directory, a folder per user and app, unless
    Faust's own ``APP_DATADIR`` names one."""
    if configured := os.environ.get("APP_DATADIR"):
        return configured
    # "{conf.name}": Faust formats the path with its settings (the app's id)
    return str(Path(tempfile.gettempdir()) / f"{{conf.name}}-data-{os.getuid()}")


def faust_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker": settings.kafka_url,
        "store": "memory://",
        "datadir": data_dir(),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "web_port": settings.web_port,
        "web_bind": settings.web_bind,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        # A lost worker is noticed within 10 s; a join waits at most 6 s for stragglers.
        "broker_session_timeout": 10.0,
        "broker_rebalance_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "Monitor": LeanMonitor,
        "producer_partitioner": KeyPartitioner(),  # Kafka's default partitions, hashed cheaper
        # A partition's batch of records up to 256 KB (aiokafka's default is 16 KB): a batch of
        # notifications' `deliveries` records goes in one builder a partition (wiring.produce),
        # 4.8 µs a record against 10.5 with 16 KB ones (bench.produce). Well under the request
        # limit (1 MB here, Kafka's message.max.bytes default 1 MB).
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
    }


def configure(settings: Settings, runtime: Runtime) -> faust.App:
    """Apply ``settings`` to the app and install the runtime the agents use."""
    global _runtime
    faust_patches.install(settings.fetch_max_wait_ms)
    with warnings.catch_warnings():
        # Topics and agents are declared before configuration on purpose; none of them has
        # captured a setting yet (partitions are resolved when the topics are declared).
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.config_from_object(faust_config(settings), force=True)
    forget_unstarted_clients()
    _runtime = runtime
    return app


def forget_unstarted_clients() -> None:
    """Drop the Kafka transport (and a producer) Faust built before this configuration, unless
    started: declaring an agent builds the app's conductor, and with it the transport, from the
    broker configured then (Faust's default, localhost:9092, before ``configure``), and Faust
    keeps both. Code that imported the agents before configuring (a test importing a constant
    of theirs: the agent tests then failed at set-up, unable to reach localhost:9092) would
    otherwise connect to the wrong broker. The conductor stays: it holds the topics and agents,
    not the broker."""
    producer = app._producer
    if producer is not None and producer.started:
        return  # in use: a running producer is not replaced under its callers
    app._producer = None
    app._transport = None
    app._producer_transport = None


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("wiring.faust_app.configure() has not been called")
    return _runtime
