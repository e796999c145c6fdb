"""Journeys on the real stack (broker, Redis, worker processes), with delays of seconds: a
follow-up fires when no completion arrives, none does once the completion event came first, and a
worker killed while a follow-up is due neither loses nor doubles it."""

import asyncio
import shutil
import uuid
from collections import Counter

import pytest

from app.core.settings import PROJECT_ROOT, Settings
from app.core.timestamps import local_iso
from app.intake.events import validate_event
from bench.harness import Workers, load_profiles, wait_until
from devstack.stack import SmtpSink, free_port
from tests.conftest import LOGS, delete_prefix
from tests.helpers import (
    ON_BOTH_REDIS,
    TEST_SECRET,
    graduate_event,
    outbox_lines,
    person,
)
from wiring.kafka import publish
from wiring.runtime import Runtime

pytestmark = pytest.mark.integration

GRADUATE_RULE = """
id: graduate-hukou-transfer
version: 1
name: 毕业生接收获批 → 办理户籍迁入
on: graduate.reception.approved
category: reminder
recipients:
  subject: true
channels:
  sms: graduate_hukou_transfer
follow_up:
  stop_on: hukou.migration.completed
  steps:
    - after: 3s
      repeat: 2
      channels:
        sms: graduate_hukou_reminder
"""
DONE_RULE = """
id: hukou-migration-completed
version: 1
name: 户籍迁入办结 → 办结通知
on: hukou.migration.completed
category: notice
recipients:
  subject: true
channels:
  sms: hukou_migration_done
"""


def completed_event(event_id: str, subject: str) -> dict:
    return {"id": event_id, "type": "hukou.migration.completed", "occurred_at": local_iso(-60),
            "source": "gd-zwfw", "subject": {"kind": "person", "id": subject}, "district": "440308",
            "data": {"approval_no": "SZJS-TEST-0001"}}  # fmt: skip


@pytest.fixture
def journey_stack(broker, redis_url, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "graduate.yaml").write_text(GRADUATE_RULE, encoding="utf-8")
    (rules / "done.yaml").write_text(DONE_RULE, encoding="utf-8")
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    prefix = f"test-journey-{uuid.uuid4().hex[:6]}:"
    sink = SmtpSink.start()
    outbox = tmp_path / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix,
                        smtp_url=sink.url, sms_url=f"file://{outbox}", web_port=free_port(), partitions=2,
                        quiet_hours="off", rules_dir=rules, templates_dir=templates)  # fmt: skip
    workers = Workers(settings, LOGS / prefix.rstrip(":"))
    yield {"settings": settings, "outbox": outbox, "workers": workers}
    workers.stop_all()
    sink.stop()
    asyncio.run(delete_prefix(redis_url, prefix))


def texts_to(stack, mobile: str) -> Counter:
    """How many SMS of each kind the number got: first message, reminder, completion notice."""
    kinds: Counter = Counter()
    for line in outbox_lines(stack["outbox"]):
        if line["to"].endswith(mobile[-8:]):
            text = line["text"]
            kinds["reminder" if "提醒您" in text else "done" if "已办结" in text else "first"] += 1
    return kinds


async def journey(settings: Settings, subject: str) -> dict:
    rt = Runtime.build(settings, deliver=False)
    try:
        [jid] = await rt.planner.journeys.waiting("hukou.migration.completed", subject) or [None]
        return await rt.planner.journeys.journey(jid) if jid else {}
    finally:
        await rt.close()


@ON_BOTH_REDIS
async def test_reminders_follow_until_the_step_is_done_and_stop_when_it_is(journey_stack):
    stack, settings = journey_stack, journey_stack["settings"]
    await load_profiles(settings, [person("P-J1", mobile="13700000001"),
                                   person("P-J2", mobile="13700000002")])  # fmt: skip
    worker = stack["workers"].start()
    assert await stack["workers"].ready(worker)
    publish(settings.kafka_servers, [validate_event(graduate_event("EV-J1", "P-J1")),
                                     validate_event(graduate_event("EV-J2", "P-J2"))])  # fmt: skip
    assert await wait_until(lambda: texts_to(stack, "13700000002")["first"] == 1, timeout=60)
    # P-J2's registration moves in before its first reminder is due (3 s): no reminder, a notice
    publish(settings.kafka_servers, [validate_event(completed_event("EV-HK2", "P-J2"))])
    assert await wait_until(lambda: texts_to(stack, "13700000001")["reminder"] >= 2, timeout=60)
    await asyncio.sleep(4)  # a third reminder, or a late one for P-J2, would arrive now
    assert texts_to(stack, "13700000001") == {"first": 1, "reminder": 2}
    assert texts_to(stack, "13700000002") == {"first": 1, "done": 1}
    rt = Runtime.build(settings, deliver=False)
    try:
        trace = [s["step"] for s in await rt.state.steps("EV-J1")]
        assert "journey started" in trace and "follow-up 1.1" in trace and "follow-up 1.2" in trace
        assert "journeys completed" in [s["step"] for s in await rt.state.steps("EV-HK2")]
    finally:
        await rt.close()
    # the completion of a journey whose reminders are all sent still counts (for its outcome)
    publish(settings.kafka_servers, [validate_event(completed_event("EV-HK1", "P-J1"))])
    assert await wait_until(lambda: texts_to(stack, "13700000001")["done"] == 1, timeout=60)


@ON_BOTH_REDIS
async def test_a_worker_killed_while_a_follow_up_is_due_neither_loses_nor_doubles_it(journey_stack):
    stack, settings = journey_stack, journey_stack["settings"]
    await load_profiles(settings, [person("P-J3", mobile="13700000003")])
    workers = stack["workers"]
    worker = workers.start()
    assert await workers.ready(worker)
    publish(settings.kafka_servers, [validate_event(graduate_event("EV-J3", "P-J3"))])
    assert await wait_until(lambda: texts_to(stack, "13700000003")["first"] == 1, timeout=60)
    workers.kill(worker)  # SIGKILL, holding the lease, with the first reminder due in 3 s
    await asyncio.sleep(4)
    assert texts_to(stack, "13700000003") == {"first": 1}
    worker = workers.start()  # takes the lease over once the dead one's runs out
    assert await wait_until(lambda: texts_to(stack, "13700000003")["reminder"] >= 2, timeout=60)
    await asyncio.sleep(4)
    assert texts_to(stack, "13700000003") == {"first": 1, "reminder": 2}
    record = await journey(settings, "P-J3")
    assert (record["status"], record["sent"]) == ("done", "2")
