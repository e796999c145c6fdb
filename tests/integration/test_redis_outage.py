"""Redis stopped for a few seconds during a burst, then started again: the worker pauses,
resumes, and every notification is delivered exactly once."""

import asyncio
import uuid

import pytest

from app.core.settings import Settings
from bench.harness import (
    Delivered,
    Workers,
    prepare_burst,
    tally,
    wait_until,
)
from devstack.stack import RedisClusterServers, RedisServer, SmtpSink, free_port
from tests.conftest import LOGS
from tests.helpers import TEST_SECRET
from wiring.kafka import publish

pytestmark = pytest.mark.integration

BURST = 300


class OwnRedis:
    """A redis-server with an append-only file, so that a stop and start keeps its data."""

    def __init__(self, folder):
        self.port = free_port()
        self.folder = folder
        self.server = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.server = RedisServer.start(LOGS, port=self.port, folder=self.folder, appendonly=True)

    def stop(self):
        self.server.stop()


class OwnCluster:
    """A three-master Redis Cluster with append-only files: every node stops, then all start
    again on their ports, from their files and nodes.conf."""

    def __init__(self, folder):
        self.folder = folder
        self.cluster = None
        self.url = None

    def start(self):
        if self.cluster is None:
            self.cluster = RedisClusterServers.start(LOGS, folder=self.folder, appendonly=True)
            self.url = self.cluster.url
        else:
            self.cluster.resume()
            self.cluster.wait_ready()

    def stop(self):
        self.cluster.stop()


@pytest.mark.parametrize("kind", ["single", "cluster"])
async def test_redis_stopped_during_a_burst_loses_nothing_and_duplicates_nothing(
    broker, tmp_path, kind
):
    redis = (OwnRedis if kind == "single" else OwnCluster)(tmp_path / "redis")
    redis.start()
    sink = SmtpSink.start()
    outbox = tmp_path / "sms.jsonl"
    prefix = f"test-outage-{uuid.uuid4().hex[:6]}:"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis.url, redis_prefix=prefix,
                        smtp_url=sink.url, sms_url=f"file://{outbox}", web_port=free_port(), partitions=4,
                        quiet_hours="off", claim_lease_seconds=3, retry_base_seconds=0.3, retry_max_seconds=1,
                        batch_max=4)  # fmt: skip
    # what may already be handed over when Redis stops: a batch per delivery actor, in both lanes
    # (imported here: importing agents declares the topics, which the agent tests do after
    # configuring the app)
    from agents.deliver_notifications import CONCURRENCY  # noqa: PLC0415

    under_way = 2 * CONCURRENCY * settings.batch_max
    workers = Workers(settings, LOGS / prefix.rstrip(":"))
    seen = Delivered(outbox, sink)
    try:
        events, expected, total = await prepare_burst(settings, BURST, prefix)
        worker = workers.start()
        await asyncio.to_thread(publish, settings.kafka_servers, events)
        assert await wait_until(lambda: seen.refresh().total >= total * 0.3, timeout=120)
        redis.stop()
        during = seen.refresh().total
        await asyncio.sleep(4)
        assert seen.refresh().total - during <= under_way
        redis.start()
        # a worker that stopped fails the test at once, not after the wait (its log lines above
        # INFO are in the report)
        assert await wait_until(
            lambda: worker.poll() is not None or seen.refresh().total >= total, timeout=180
        )
        assert worker.poll() is None, "the worker stopped after the outage"
        await asyncio.sleep(3)
        assert tally(expected, seen.refresh()) == {
            "expected": total, "delivered": total, "duplicated": 0, "duplicated_sms": 0,
            "duplicated_email": 0, "lost": 0, "unexpected": 0}  # fmt: skip
        assert worker.poll() is None, "the worker kept running through the outage"
    finally:
        workers.stop_all()
        sink.stop()
        redis.stop()
