"""Date reminders on the real stack: a profile whose date comes due gets its reminder once; the
schedule moves when the profile's date changes and is gone when the profile is deleted."""

import asyncio
import json
import time
import uuid
from datetime import date, timedelta

import pytest

from app.core.settings import PROJECT_ROOT, Settings
from bench.harness import Workers, load_profiles, wait_until
from devstack.stack import SmtpSink, free_port
from tests.conftest import LOGS, delete_prefix
from tests.helpers import ON_BOTH_REDIS, TEST_SECRET, outbox_lines, person
from wiring.kafka import publish_raw
from wiring.runtime import Runtime

pytestmark = pytest.mark.integration

CARD_RULE = """
id: id-card-renewal
version: 1
name: 居民身份证到期 → 换领提醒
on_date: {kind: person, fact: id_card_expiry, days: -30, at: "00:00"}
category: reminder
recipients: {subject: true}
channels: {sms: id_card_renewal}
"""


def in_days(n: int) -> str:
    return (date.today() + timedelta(days=n)).isoformat()


@pytest.fixture
def date_stack(broker, redis_url, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "card.yaml").write_text(CARD_RULE, encoding="utf-8")
    prefix = f"test-dates-{uuid.uuid4().hex[:6]}:"
    sink = SmtpSink.start()
    outbox = tmp_path / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix,
                        smtp_url=sink.url, sms_url=f"file://{outbox}", web_port=free_port(), partitions=2,
                        quiet_hours="off", rules_dir=rules, templates_dir=PROJECT_ROOT / "templates")  # fmt: skip
    workers = Workers(settings, LOGS / prefix.rstrip(":"))
    yield {"settings": settings, "outbox": outbox, "workers": workers}
    workers.stop_all()
    sink.stop()
    asyncio.run(delete_prefix(redis_url, prefix))


def sms_to(stack, mobile: str) -> list[str]:
    return [
        line["text"] for line in outbox_lines(stack["outbox"]) if line["to"].endswith(mobile[-8:])
    ]


async def scheduled(settings: Settings, profile_id: str) -> float | None:
    rt = Runtime.build(settings, deliver=False)
    try:
        return await rt.planner.dated.queue.when("id-card-renewal", profile_id)
    finally:
        await rt.close()


@ON_BOTH_REDIS
async def test_a_date_reminder_fires_once_moves_with_the_date_and_goes_with_the_profile(date_stack):
    stack, settings = date_stack, date_stack["settings"]
    due_soon = person("P-D1", mobile="13600000001") | {"dates": {"id_card_expiry": in_days(10)}}
    later = person("P-D2", mobile="13600000002") | {"dates": {"id_card_expiry": in_days(100)}}
    leaving = person("P-D3", mobile="13600000003") | {"dates": {"id_card_expiry": in_days(200)}}
    await load_profiles(settings, [due_soon, later, leaving])
    first = await scheduled(settings, "P-D2")
    assert first is not None and first > time.time() + 60 * 86400  # 70 days on, at 00:00
    worker = stack["workers"].start()
    assert await stack["workers"].ready(worker)
    # P-D1's card expires in 10 days: the 30-day window is open, so it is told at once
    assert await wait_until(lambda: len(sms_to(stack, "13600000001")) == 1, timeout=60)
    assert in_days(10)[:4] in sms_to(stack, "13600000001")[0]
    assert await scheduled(settings, "P-D1") is None
    # renewed, P-D2's reminder moves; P-D3 is deleted and its reminder with it; P-D1 stored
    # again unchanged is not told again
    renewed = later | {"dates": {"id_card_expiry": in_days(3650)}}
    publish_raw(settings.kafka_servers, "profiles", [
        (b"P-D2", json.dumps(renewed, ensure_ascii=False).encode()), (b"P-D3", None),
        (b"P-D1", json.dumps(due_soon, ensure_ascii=False).encode())])  # fmt: skip

    async def settled() -> bool:
        moved, gone = await scheduled(settings, "P-D2"), await scheduled(settings, "P-D3")
        return moved is not None and moved > first + 3000 * 86400 and gone is None

    for _ in range(100):
        if await settled():
            break
        await asyncio.sleep(0.3)
    assert await settled()
    await asyncio.sleep(3)
    assert len(sms_to(stack, "13600000001")) == 1
    assert sms_to(stack, "13600000002") == sms_to(stack, "13600000003") == []
