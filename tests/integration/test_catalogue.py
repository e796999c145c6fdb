"""Every shipped lifecycle item, on the real stack (broker, Redis, a worker process, the shipped
rules and texts): each reaches exactly the residents or enterprise contacts it is meant for, once,
in their language; items with a completion event end their journey when it arrives.

Event items are triggered by their type's own example (the catalogue's), date items by the
profiles' dated facts through the real scheduler (their queue entries brought forward to now),
calendar items by the event the scheduler makes on their date (``calendar_event``; when that date
comes is the unit tests' concern), weather items by a typhoon warning and its cancellation."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.core.settings import PROJECT_ROOT, Settings
from app.core.timestamps import local_iso
from app.intake.events import catalogue, validate_event
from app.planning.calendar import calendar_event
from app.planning.journeys import journey_id
from bench.harness import Workers, load_profiles, wait_until
from devstack.stack import SmtpSink, free_port
from tests.conftest import LOGS, delete_prefix
from tests.helpers import TEST_SECRET, contact, outbox_lines, weather_event
from wiring.kafka import publish
from wiring.runtime import Runtime

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(SHANGHAI).date()


def days(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


def years_ago(n: int, plus_days: int = 0) -> str:
    return (TODAY.replace(year=TODAY.year - n) + timedelta(days=plus_days)).isoformat()


def resident(pid: str, mobile: str, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "kind": "person", "name": "测试居民", "district": "440308",
            "mobile": mobile, **extra}  # fmt: skip


def company(eid: str, contacts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": eid, "kind": "enterprise", "name": f"{eid}有限公司", "district": "440308",
            "industry": "services", "contacts": contacts, **extra}  # fmt: skip


PROFILES = [
    resident("P-GRAD", "13710000001", email="grad@example.cn"),
    resident("P-ID", "13710000002", dates={"id_card_expiry": days(10)}),
    resident("P-80", "13710000003", dates={"birth_date": years_ago(80)}),
    resident("P-BIRTH", "13710000004", email="parent@example.cn"),
    resident("P-PENSION", "13710000005"),
    resident(
        "P-RP",
        "13710000006",
        language="en",
        name="Li Ming",
        dates={"residence_permit_expiry": days(5)},
    ),  # fmt: skip
    resident("P-MARRY", "13710000007"),
    resident("P-CHILD", "13710000008", dates={"child_birth_date": years_ago(6, plus_days=100)}),
    resident("P-DRIVE", "13710000009", dates={"driving_licence_expiry": days(30)}),
    resident("P-HKMO", "13710000010", dates={"hk_macau_permit_expiry": days(20)}),
    resident("P-JOB", "13710000011"),
    resident("P-MED1", "13710000012", tags=["resident_medical_insurance"]),
    resident(
        "P-MED2",
        "13710000013",
        tags=["resident_medical_insurance"],
        language="en",
        name="Wang Fang",
    ),
    company(
        "E-BIZ",
        [contact("legal_representative", "13910000001")],
        size="small",
        dates={"registered_on": days(-1)},
    ),
    company(
        "E-ADS",
        [contact("safety_officer", "13910000002"), contact("legal_representative", "13910000003")],
        permits=["outdoor_advertising"],
        dates={"outdoor_ad_permit_expiry": days(30)},
    ),  # fmt: skip
    company(
        "E-SITE", [contact("legal_representative", "13910000004")], permits=["construction_site"]
    ),
    company("E-CHEM", [contact("safety_officer", "13910000005")], permits=["hazardous_chemicals"]),
    company(
        "E-FOOD",
        [contact("legal_representative", "13910000006"), contact("finance_officer", "13910000007")],
        tags=["small_scale_taxpayer"],
        dates={"food_licence_expiry": days(60)},
    ),  # fmt: skip
]

# rule → the numbers it must reach (each once) and a phrase its text has (one of them: languages)
EXPECTED: dict[str, tuple[set[str], str | tuple[str, ...]]] = {
    "graduate-hukou-transfer": ({"13710000001"}, "户籍迁入"),
    "hukou-migration-completed": ({"13710000001"}, "已办结"),
    "id-card-renewal": ({"13710000002"}, "居民身份证"),
    "old-age-allowance": ({"13710000003"}, "高龄"),
    "birth-registration-next-steps": ({"13710000004"}, "入户"),
    "newborn-hukou-registered": ({"13710000004"}, "入户已于"),
    "pension-next-steps": ({"13710000005"}, "养老保险待遇已核定"),
    "residence-permit-renewal": ({"13710000006"}, "Dear Li Ming, your Shenzhen residence permit"),
    "marriage-next-steps": ({"13710000007"}, "结婚证"),
    "school-enrolment": ({"13710000008"}, "小一学位"),
    "driving-licence-renewal": ({"13710000009"}, "驾驶证"),
    "travel-permit-renewal": ({"13710000010"}, "往来港澳通行证"),
    "unemployment-benefit": ({"13710000011"}, "失业保险金"),
    "resident-medical-insurance-renewal": (
        {"13710000012", "13710000013"},
        ("居民医疗保险", "resident medical insurance"),
    ),  # fmt: skip
    "business-registered-next-steps": ({"13910000001"}, "设立登记"),
    "weather-outdoor-ads-warning": ({"13910000002"}, "户外广告设施"),
    "weather-construction-sites-warning": ({"13910000004"}, "塔吊"),
    "weather-hazardous-goods-warning": ({"13910000005"}, "危险化学品"),
    "weather-outdoor-ads-all-clear": ({"13910000002", "13910000004", "13910000005"}, "已解除"),
    "enterprise-annual-report": (
        {"13910000001", "13910000003", "13910000004", "13910000006"},
        "年报",
    ),  # fmt: skip
    "tax-filing-period": ({"13910000007"}, "申报"),
    "outdoor-ad-permit-renewal": ({"13910000003"}, "户外广告设置许可"),
    "food-licence-renewal": ({"13910000006"}, "食品经营许可证"),
    "policy-matched": ({"13910000001"}, "盐田区新办企业开办补贴"),
}
POLICY = """
id: yt-new-business-grant
name: 盐田区新办企业开办补贴
summary: 新设立的小微企业可获一次性开办补贴
confirm: 开户银行账号
where: “i深圳”App
districts: ["440308"]
criteria: {sizes: [micro, small], age_months: {max: 12}}
"""

# (event type, subject): the catalogue's example of the type, for this subject, now
EXAMPLES = [
    ("graduate.reception.approved", "P-GRAD"),
    ("birth.registered", "P-BIRTH"),
    ("pension.entitlement.approved", "P-PENSION"),
    ("marriage.registered", "P-MARRY"),
    ("employment.terminated", "P-JOB"),
    ("business.registered", "E-BIZ"),
]
JOURNEYS = [  # the items with a completion event, and the completions below in the same order
    ("graduate.reception.approved", "P-GRAD"),
    ("birth.registered", "P-BIRTH"),
    ("employment.terminated", "P-JOB"),
    ("business.registered", "E-BIZ"),
]
COMPLETIONS = [  # after the first messages: each ends its subject's journey
    ("hukou.migration.completed", "P-GRAD"),
    ("newborn.hukou.registered", "P-BIRTH"),
    ("unemployment.benefit.claimed", "P-JOB"),
    ("tax.registration.completed", "E-BIZ"),
]


def example(event_type: str, subject: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(catalogue()[event_type].examples[0]))
    doc.update(id=f"E-CAT-{event_type}-{subject}", occurred_at=local_iso(-600))
    doc["subject"]["id"] = subject
    return doc


@pytest.fixture
def stack(broker, redis_url, tmp_path):
    prefix = f"test-catalogue-{uuid.uuid4().hex[:6]}:"
    policies = tmp_path / "policies"  # one of the test's own: the shipped ones' dates run out
    policies.mkdir()
    (policies / "grant.yaml").write_text(POLICY, encoding="utf-8")
    sink = SmtpSink.start()
    outbox = tmp_path / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix,
                        smtp_url=sink.url, sms_url=f"file://{outbox}", web_port=free_port(), partitions=2,
                        quiet_hours="off", rules_dir=PROJECT_ROOT / "rules",
                        templates_dir=PROJECT_ROOT / "templates", policies_dir=policies)  # fmt: skip
    workers = Workers(settings, LOGS / prefix.rstrip(":"))
    yield {"settings": settings, "outbox": outbox, "workers": workers, "sink": sink}
    workers.stop_all()
    sink.stop()
    asyncio.run(delete_prefix(redis_url, prefix))


def sent_by_rule(stack) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in outbox_lines(stack["outbox"]):
        found[line["rule_id"]].append(line)
    return found


def reached(stack, rules: list[str]) -> bool:
    sent = sent_by_rule(stack)
    return all(len(sent[r]) >= len(EXPECTED[r][0]) for r in rules)


async def bring_forward(settings: Settings) -> int:
    """The date reminders the profiles scheduled, due now (as if their day had come)."""
    rt = Runtime.build(settings, deliver=False)
    try:
        queue = rt.planner.dated.queue.queue_key()
        members = await rt.redis.zrange(queue, 0, -1)
        if members:
            await rt.redis.zadd(queue, {m: time.time() for m in members})
        return len(members)
    finally:
        await rt.close()


async def journey_states(settings: Settings) -> dict[str, str]:
    """Each completion's subject → the status of the journey its first event started."""
    rt = Runtime.build(settings, deliver=False)
    try:
        out = {}
        for (start_type, subject), (_, done_subject) in zip(JOURNEYS, COMPLETIONS, strict=True):
            assert subject == done_subject
            [rule] = [r for r in rt.rules.for_event(start_type) if r.follow_up]
            journey = journey_id(rule.id, f"E-CAT-{start_type}-{subject}", subject)
            out[subject] = (await rt.planner.journeys.journey(journey)).get("status", "none")
        return out
    finally:
        await rt.close()


async def test_every_shipped_item_reaches_exactly_whom_it_is_for(stack):
    rt = Runtime.build(stack["settings"], deliver=False)
    shipped = {r.id for r in rt.rules.rules}
    await rt.close()
    assert set(EXPECTED) == shipped, "a shipped item without a scenario, or a scenario without one"
    settings = stack["settings"]
    await load_profiles(settings, PROFILES)
    assert await bring_forward(settings) == 8  # six residents' dates, two enterprises'
    worker = stack["workers"].start()
    assert await stack["workers"].ready(worker)

    typhoon = weather_event("E-CAT-TY", ["440308"], level="orange")
    typhoon["data"].update(kind="typhoon", headline="盐田区台风橙色预警信号", warning_id="W-CAT-TY")
    now = time.time()
    publish(settings.kafka_servers, [validate_event(example(t, s)) for t, s in EXAMPLES] + [
        validate_event(typhoon),
        validate_event(calendar_event("enterprise-annual-report", days(0), now, SHANGHAI)),
        validate_event(calendar_event("tax-filing-period", days(0), now, SHANGHAI)),
        validate_event(calendar_event("resident-medical-insurance-renewal", days(0), now, SHANGHAI)),
    ])  # fmt: skip
    first = [r for r in EXPECTED if r not in (
        "hukou-migration-completed", "newborn-hukou-registered", "weather-outdoor-ads-all-clear")]  # fmt: skip
    assert await wait_until(lambda: reached(stack, first), timeout=90), sorted(
        r for r in first if not reached(stack, [r]))  # fmt: skip

    cancel = weather_event("E-CAT-TY-X", ["440308"]) | {"type": "weather.warning.cancelled"}
    cancel["data"].update(
        warning_id="W-CAT-TY-X", references=["W-CAT-TY"], headline="盐田区台风橙色预警信号"
    )
    publish(settings.kafka_servers, [validate_event(example(t, s)) for t, s in COMPLETIONS]
            + [validate_event(cancel)])  # fmt: skip
    assert await wait_until(lambda: reached(stack, list(EXPECTED)), timeout=90)
    await asyncio.sleep(3)  # anything sent twice, or to someone else, would be here by now

    sent = sent_by_rule(stack)
    assert set(sent) == set(EXPECTED)
    for rule, (numbers, phrase) in EXPECTED.items():
        to = [line["to"][-11:] for line in sent[rule]]
        assert sorted(to) == sorted(numbers), rule  # each of them, once, and nobody else
        phrases = (phrase,) if isinstance(phrase, str) else phrase
        for line in sent[rule]:
            assert any(p in line["text"] for p in phrases), (rule, line["text"])
    # English texts are signed in English and stay GSM-7
    english = [
        ln for r in sent.values() for ln in r if ln["to"] in ("+8613710000006", "+8613710000013")
    ]
    assert english and all(ln["text"].startswith("Yantian Gov Services: ") for ln in english)
    assert all(ln["encoding"] == "GSM7" for ln in english)
    # the e-mails of the items that send one
    mail_to = sorted(m["To"].addresses[0].addr_spec for m in stack["sink"].received())
    assert mail_to == ["grad@example.cn", "parent@example.cn"]
    # every journey with a completion event was ended by it
    assert await journey_states(settings) == dict.fromkeys(
        ["P-GRAD", "P-BIRTH", "P-JOB", "E-BIZ"], "completed")  # fmt: skip
