"""A weather warning issued by mistake and cancelled while its fan-out is under way, with a worker
running: the cancel stops what was not sent yet; nothing is sent twice or lost from view (each
recipient is sent the warning or suppressed with the cancel's reason), and the all-clear goes to
everyone the warning reached."""

import asyncio
import uuid
from collections import Counter

import pytest

from app.core.settings import Settings
from app.intake.events import validate_event
from app.state import DeliveryState
from bench.harness import Workers, load_profiles, wait_until
from devstack.stack import SmtpSink, free_port
from tests.conftest import LOGS, delete_prefix
from tests.helpers import ON_ONE_REDIS, TEST_SECRET, outbox_lines, weather_event
from wiring.kafka import publish
from wiring.runtime import make_redis

pytestmark = pytest.mark.integration

AUDIENCE = 2000
RATE = 100  # SMS a second, as a provider's account allows: the fan-out takes 20 s


def enterprises() -> list[dict]:
    return [{"id": f"E-C{i:05d}", "kind": "enterprise", "name": f"企业{i}", "district": "440308",
             "permits": ["outdoor_advertising"],
             "contacts": [{"role": "safety_officer", "mobile": f"+86137{i:08d}"}]}
            for i in range(AUDIENCE)]  # fmt: skip


@ON_ONE_REDIS
async def test_a_cancel_stops_a_warnings_fan_out_where_it_got_to(broker, redis_url, tmp_path):
    prefix = f"test-cancel-{uuid.uuid4().hex[:6]}:"
    sink = SmtpSink.start()
    outbox = tmp_path / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix,
                        smtp_url=sink.url, sms_url=f"file://{outbox}", web_port=free_port(), partitions=4,
                        quiet_hours="off", fanout_chunk=200, sms_rate=RATE, blast_first_run=0)  # fmt: skip
    await load_profiles(settings, enterprises())
    workers = Workers(settings, LOGS / prefix.rstrip(":"))
    redis = make_redis(settings)
    try:
        assert await workers.ready(workers.start()), "the worker did not start"
        warning = weather_event("CX-1", ["440308"])
        publish(settings.kafka_servers, [validate_event(warning)])

        def sent(event_id: str) -> list[dict]:
            return [line for line in outbox_lines(outbox) if line["event_id"] == event_id]

        assert await wait_until(lambda: len(sent("CX-1")) >= 20, timeout=120, every=0.1)
        cancel = weather_event("CX-CANCEL", ["440308"]) | {"type": "weather.warning.cancelled"}
        cancel["data"] = dict(cancel["data"], warning_id="CX-CANCEL",
                              references=[warning["data"]["warning_id"]])  # fmt: skip
        publish(settings.kafka_servers, [validate_event(cancel)])
        state = DeliveryState(redis, prefix)

        async def settled() -> bool:
            counts = await state.counters("rules")
            done = counts.get("weather-outdoor-ads-warning:sent", 0) + counts.get(
                "weather-outdoor-ads-warning:suppressed", 0)  # fmt: skip
            cleared = counts.get("weather-outdoor-ads-all-clear:sent", 0)
            return done >= AUDIENCE and cleared >= counts.get("weather-outdoor-ads-warning:sent", 0)

        assert await wait_until(settled, timeout=240, every=0.5), await state.counters("rules")
        await asyncio.sleep(2)  # nothing more comes
        warned = Counter(line["to"] for line in sent("CX-1"))
        counts = await state.counters("rules")
        assert 20 <= sum(warned.values()) < AUDIENCE  # stopped where it had got to
        assert max(warned.values()) == 1  # none twice
        assert counts["weather-outdoor-ads-warning:sent"] == sum(warned.values())
        stopped = counts["weather-outdoor-ads-warning:suppressed"]
        assert stopped + sum(warned.values()) == AUDIENCE  # every recipient accounted for
        reasons = Counter()
        for member in await state.notifications_of("CX-1"):
            record = await state.record(member)
            if record["status"] == "suppressed":
                reasons[record["reason"]] += 1
        assert reasons == {
            "the warning was cancelled (event CX-CANCEL); not sent after it": stopped
        }
        # The all-clear: to each one the warning reached (and to those of a chunk planned by
        # then whose warning the cancel stopped: who was warned is written at planning)
        all_clear = Counter(line["to"] for line in sent("CX-CANCEL"))
        assert set(warned) <= set(all_clear) and max(all_clear.values()) == 1
        assert len(all_clear) == counts["weather-outdoor-ads-all-clear:sent"] <= AUDIENCE
    finally:
        workers.stop_all()
        sink.stop()
        await redis.aclose()
        await delete_prefix(redis_url, prefix)
