"""A worker killed with SIGKILL in the middle of a burst, then restarted: every expected
notification is delivered, none twice, counted at the SMTP server and in the SMS outbox."""

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
from devstack.stack import SmtpSink, free_port
from tests.conftest import LOGS, delete_prefix
from tests.helpers import ON_BOTH_REDIS, TEST_SECRET
from wiring.kafka import publish

pytestmark = pytest.mark.integration

BURST = 600  # events; each gives one SMS and one e-mail


@ON_BOTH_REDIS
async def test_sigkill_mid_burst_loses_nothing_and_sends_nothing_twice(broker, redis_url, tmp_path):
    prefix = f"test-crash-{uuid.uuid4().hex[:8]}:"
    sink = SmtpSink.start()
    outbox = tmp_path / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix, smtp_url=sink.url,
                        sms_url=f"file://{outbox}", web_port=free_port(), partitions=4, quiet_hours="off",
                        claim_lease_seconds=3, retry_base_seconds=0.3, retry_max_seconds=1)  # fmt: skip
    workers = Workers(settings, LOGS / prefix.rstrip(":"))
    seen = Delivered(outbox, sink)
    try:
        events, expected, total = await prepare_burst(settings, BURST, prefix)
        worker = workers.start()
        await asyncio.to_thread(publish, settings.kafka_servers, events)
        for share in (0.25, 0.6):  # kill it twice, at a quarter and at three fifths of the burst
            reached = await wait_until(lambda: seen.refresh().total >= total * share, timeout=120)
            assert reached, f"only {seen.refresh().total} of {total} delivered"
            workers.kill(worker)
            worker = workers.start()
        assert await wait_until(lambda: seen.refresh().total >= total, timeout=180)
        await asyncio.sleep(3)  # anything sent twice would arrive now
        result = tally(expected, seen.refresh())
        assert result == {
            "expected": total,
            "delivered": total,
            "duplicated": 0,
            "duplicated_sms": 0,
            "duplicated_email": 0,
            "lost": 0,
            "unexpected": 0,
        }
    finally:
        workers.stop_all()
        sink.stop()
        await delete_prefix(redis_url, prefix)
