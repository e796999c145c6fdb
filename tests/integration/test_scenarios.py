"""The three seed scenarios end to end: a `lifecycle worker` process on the embedded broker, a real
Redis and an aiosmtpd server in this process. Events go in through Kafka; what comes out is read
where a citizen would see it: the SMS outbox and the mail the SMTP server received."""

import asyncio
import json
import os
import sys
import time
import uuid

import pytest
from kafka import KafkaProducer

from app.access.tokens import TokenStore
from app.core.settings import PROJECT_ROOT, Settings, to_environ
from app.core.timestamps import local_iso
from app.intake.events import validate_event
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from app.state import FINAL, DeliveryState
from devstack.stack import SmtpSink, free_port, spawn, stop_process
from lifecycle.cli import main
from tests.conftest import LOGS, delete_prefix
from tests.helpers import (
    TEST_SECRET,
    business_event,
    contact,
    enterprise,
    eventually,
    graduate_event,
    outbox_lines,
    person,  # fmt: skip
    read_topic,
    weather_event,
)
from wiring.kafka import publish
from wiring.runtime import make_redis

pytestmark = pytest.mark.integration

PROFILES = [
    person("P-GRAD", mobile="13800138000", email="graduate@example.cn", name="李明"),
    enterprise("E-NEW", name="深圳市盐田新开办科技有限公司", contacts=[
        contact("legal_representative", "13700137000", "boss@example.cn", name="陈红"),
        contact("finance", "15000150000", name="周敏")]),
    # weather: permit holders in Yantian (one without a safety officer), elsewhere, and without permit
    enterprise("E-ADS1", permits=("outdoor_advertising",), contacts=[
        contact("safety_officer", "13900000001", "safe1@example.cn"), contact("legal_representative", "13900000002")]),
    enterprise("E-ADS2", permits=("outdoor_advertising",), contacts=[contact("legal_representative", "13900000003")]),
    enterprise("E-ADS3", permits=("outdoor_advertising", "billboard"), contacts=[contact("safety_officer", "13900000004")]),
    enterprise("E-LUOHU", district="440303", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000005")]),
    enterprise("E-NOPERMIT", contacts=[contact("safety_officer", "13900000006")]),
    person("P-RESIDENT", mobile="13900000007"),
    # delivery trouble and opt-outs
    person("P-FLAKY", mobile="13900000011", email="flaky@example.cn"),
    person("P-UNSUB", mobile="13900000012", email="unsub@example.cn", name="王芳"),
    enterprise("E-MIXED", contacts=[contact("legal_representative", "13900000013", "gone@example.cn"),
                                    contact("finance", "13900000014", "fine@example.cn")]),
    enterprise("E-TD", district="440306", permits=("outdoor_advertising",),
               contacts=[contact("safety_officer", "13900000015")]),
]  # fmt: skip


INBOUND_SECRET = "inbound-" + uuid.uuid4().hex


def signed(body: bytes, secret: str = INBOUND_SECRET, at: float | None = None) -> dict[str, str]:
    """The headers the SMS provider (here: a test) sends with an inbound message."""
    from lifecycle.web import inbound_signature

    stamp = str(int(time.time() if at is None else at))
    return {"X-Lifecycle-Timestamp": stamp,
            "X-Lifecycle-Signature": inbound_signature(secret, stamp, body)}  # fmt: skip


async def cap_token(
    settings: Settings,
    *senders: str,
    scopes: tuple[str, ...] = ("cap:publish",),
    districts: tuple[str, ...] = ("440300",),
) -> str:
    """A token for ``scopes``, acting for Shenzhen (440300) unless ``districts`` say otherwise."""
    redis = make_redis(settings)
    try:
        return await TokenStore(redis, settings.redis_prefix).add(
            f"t-{uuid.uuid4().hex[:8]}", list(scopes), list(senders), list(districts)
        )
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def stack(broker, redis_url, tmp_path_factory):
    prefix = f"test-e2e-{uuid.uuid4().hex[:8]}:"
    sink = SmtpSink.start()
    outbox = tmp_path_factory.mktemp("outbox") / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix, smtp_url=sink.url, quiet_hours="off",
                        retry_base_seconds=0.3, retry_max_seconds=1.0, retry_attempts=4, claim_lease_seconds=5,
                        sms_url=f"file://{outbox}", web_port=free_port(), partitions=4,
                        sms_inbound_secret=INBOUND_SECRET)  # fmt: skip

    async def load() -> None:
        redis = make_redis(settings)
        store = ProfileStore(redis, prefix)
        for doc in PROFILES:
            if doc["id"] != "P-GRAD":  # the graduate arrives through the profiles topic
                await store.upsert(parse_profile(doc))
        await redis.aclose()

    asyncio.run(load())
    worker = spawn([sys.executable, "-m", "lifecycle", "worker"], LOGS / f"worker-{prefix[:-1]}.log",
                   env={**os.environ, **to_environ(settings)}, cwd=PROJECT_ROOT)  # fmt: skip
    yield {"settings": settings, "sink": sink, "outbox": outbox, "worker": worker}
    stop_process(worker)
    sink.stop()
    asyncio.run(delete_prefix(redis_url, prefix))


@pytest.fixture
async def state(stack):
    redis = make_redis(stack["settings"])
    yield DeliveryState(redis, stack["settings"].redis_prefix)
    await redis.aclose()


async def delivered(state: DeliveryState, event_id: str, expected: int) -> list[dict[str, str]]:
    """Wait until ``expected`` notifications of the event have a final status; return their records."""

    async def done():
        ids = await state.notifications_of(event_id)
        records = [await state.record(i) for i in ids]
        return (
            records
            if len(ids) == expected and all(r.get("status") in FINAL for r in records)
            else None
        )

    return await eventually(done, timeout=90)


def sms_for(stack, event_id):
    return sorted(
        (line["to"], line["text"])
        for line in outbox_lines(stack["outbox"])
        if line["event_id"] == event_id
    )


def mail_for(stack, event_id):
    return [m for m in stack["sink"].received() if m["X-Lifecycle-Event"] == event_id]


async def test_graduate_gets_the_next_step_by_sms_and_email(stack, state):
    settings = stack["settings"]
    graduate = next(p for p in PROFILES if p["id"] == "P-GRAD")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    producer.send(
        "profiles", key=b"P-GRAD", value=json.dumps(graduate, ensure_ascii=False).encode()
    ).get(30)
    producer.close()
    store = ProfileStore(state.redis, settings.redis_prefix)
    await eventually(lambda: store.get("P-GRAD"), timeout=90)

    publish(settings.kafka_servers, [validate_event(graduate_event("E-GRAD-1", "P-GRAD"))])
    records = await delivered(state, "E-GRAD-1", 2)
    assert {r["status"] for r in records} == {"sent"}

    [(to, text)] = sms_for(stack, "E-GRAD-1")
    assert to == "+8613800138000"
    assert text.startswith("【盐田区政务服务】李明同学")
    assert "户籍迁入" in text and "SZJS-TEST-0001" in text
    [line] = [line for line in outbox_lines(stack["outbox"]) if line["event_id"] == "E-GRAD-1"]
    assert (line["segments"], line["encoding"]) == (2, "UCS2")

    [message] = mail_for(stack, "E-GRAD-1")
    assert message["To"].addresses[0].addr_spec == "graduate@example.cn"
    assert message["Subject"] == "毕业生接收已获批：下一步办理户籍迁入（SZJS-TEST-0001）"
    body = message.get_body(("plain",)).get_content()
    assert body.startswith("李明同学") and "接收毕业生户籍迁入" in body
    assert "深圳大学" in message.get_body(("html",)).get_content()


async def test_new_business_contacts_get_the_next_steps(stack, state):
    publish(
        stack["settings"].kafka_servers,
        [validate_event(business_event("E-BIZ-1", "E-NEW", name="深圳市盐田新开办科技有限公司"))],
    )
    await delivered(state, "E-BIZ-1", 3)
    texts = dict(sms_for(stack, "E-BIZ-1"))
    assert sorted(texts) == ["+8613700137000", "+8615000150000"]
    assert texts["+8615000150000"].startswith(
        "【盐田区政务服务】周敏您好，深圳市盐田新开办科技有限公司已于2026年7月2日完成设立登记"
    )
    assert all("刻制公章" in t and "银行基本户" in t for t in texts.values())
    [message] = mail_for(stack, "E-BIZ-1")
    assert message["To"].addresses[0].addr_spec == "boss@example.cn"
    assert message["Subject"] == "深圳市盐田新开办科技有限公司设立登记已完成：后续事项指引"
    assert "社会保险账户" in message.get_body(("plain",)).get_content()


async def test_weather_warning_reaches_only_permit_holders_in_the_area(stack, state):
    publish(stack["settings"].kafka_servers, [validate_event(weather_event("E-WX-1", ["440308"]))])
    await delivered(state, "E-WX-1", 3)
    recipients = sorted(to for to, _ in sms_for(stack, "E-WX-1"))
    # E-ADS1's safety officer, E-ADS2's legal representative (no safety officer), E-ADS3's safety officer;
    # nothing for the enterprise in Luohu, the one without the permit, or residents.
    assert recipients == ["+8613900000001", "+8613900000003", "+8613900000004"]
    assert all(
        "大风黄色预警" in text and "户外广告设施" in text for _, text in sms_for(stack, "E-WX-1")
    )
    assert mail_for(stack, "E-WX-1") == []  # the rule sends SMS only


async def test_bad_events_go_to_the_dlq_and_the_worker_keeps_delivering(stack, state):
    settings = stack["settings"]
    schema_violation = graduate_event("E-BAD-2", "P-GRAD")
    del schema_violation["data"]["approval_no"]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    producer.send("life-events", key=b"bad-1", value=b"{this is not json").get(30)
    producer.send("life-events", key=b"bad-2", value=json.dumps(schema_violation).encode()).get(30)
    producer.send(
        "life-events",
        key=b"P-GRAD",
        value=json.dumps(graduate_event("E-AFTER-BAD", "P-GRAD")).encode(),
    ).get(30)
    producer.close()
    await eventually(
        lambda: ProfileStore(state.redis, settings.redis_prefix).get("P-GRAD"), timeout=90
    )
    await delivered(state, "E-AFTER-BAD", 2)
    assert [to for to, _ in sms_for(stack, "E-AFTER-BAD")] == ["+8613800138000"]

    async def dead_letters():
        records = await read_topic(settings.kafka_servers[0], "life-events-dlq")
        return (
            {r.key: (r.value, dict(r.headers)["x-lifecycle-reason"].decode()) for r in records}
            if len(records) >= 2
            else None
        )

    dlq = await eventually(dead_letters, timeout=30)
    assert dlq[b"bad-1"][0] == b"{this is not json"
    assert dlq[b"bad-1"][1].startswith("invalid JSON")
    assert (
        dlq[b"bad-2"][1]
        == "graduate.reception.approved: data: 'approval_no' is a required property"
    )
    assert stack["worker"].poll() is None  # still running


async def test_publishing_the_same_event_twice_sends_once(stack, state):
    event = validate_event(weather_event("E-WX-TWICE", ["440308"]))
    publish(stack["settings"].kafka_servers, [event])
    publish(stack["settings"].kafka_servers, [event])
    await delivered(state, "E-WX-TWICE", 3)
    await asyncio.sleep(2)  # let the second copy be processed too
    assert len(sms_for(stack, "E-WX-TWICE")) == 3


def test_events_publish_reports_invalid_lines_and_publishes_the_rest(
    stack, tmp_path, capsys, monkeypatch
):
    path = tmp_path / "events.jsonl"
    bad = graduate_event("E-CLI-BAD", "P-GRAD") | {"type": "nope"}
    path.write_text(
        "\n".join([json.dumps(graduate_event("E-CLI-1", "P-GRAD")), "{oops", json.dumps(bad)])
    )
    for name, value in to_environ(stack["settings"]).items():
        monkeypatch.setenv(name, value)
    assert main(["events", "publish", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "published 1 event(s) to life-events" in out
    assert f"{path}: line 2: invalid JSON" in err
    assert f"{path}: line 3: unknown event type 'nope'" in err


async def test_smtp_451_a_few_times_then_accepted_is_delivered_once_after_retries(
    stack, state, capsys, monkeypatch
):
    stack["sink"].replies["flaky@example.cn"] = ["451 4.3.0 try again later"] * 2
    publish(stack["settings"].kafka_servers, [validate_event(graduate_event("E-FLAKY", "P-FLAKY"))])
    records = {r["channel"]: r for r in await delivered(state, "E-FLAKY", 2)}
    assert (records["email"]["status"], records["email"]["attempts"]) == ("sent", "3")
    assert len([m for m in mail_for(stack, "E-FLAKY")]) == 1
    assert stack["sink"].replies["flaky@example.cn"] == []
    outcomes = [
        json.loads(r.value)["status"]
        for r in await read_topic(stack["settings"].kafka_servers[0], "deliveries")
        if json.loads(r.value)["event_id"] == "E-FLAKY"
        and json.loads(r.value)["channel"] == "email"
    ]
    assert outcomes == ["sending", "deferred", "sending", "deferred", "sending", "sent"]

    for name, value in to_environ(stack["settings"]).items():
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(main, ["trace", "E-FLAKY"]) == 0
    trace = capsys.readouterr().out
    assert "event E-FLAKY" in trace and "planned" in trace
    assert trace.count("outcome=temporary") == 2 and "outcome=sent" in trace
    assert "sent — rule graduate-hukou-transfer, email to f****@example.cn, attempts 3" in trace


async def test_smtp_550_fails_at_once_into_the_dlq_and_other_recipients_are_unaffected(
    stack, state
):
    stack["sink"].replies["gone@example.cn"] = ["550 5.1.1 mailbox unavailable"]
    publish(stack["settings"].kafka_servers, [validate_event(business_event("E-550", "E-MIXED"))])
    records = await delivered(state, "E-550", 4)
    by_address = {r["recipient"]: r for r in records}
    assert (by_address["g***@example.cn"]["status"], by_address["g***@example.cn"]["attempts"]) == (
        "failed",
        "1",
    )
    assert {r["status"] for a, r in by_address.items() if a != "g***@example.cn"} == {"sent"}
    assert [m["To"].addresses[0].addr_spec for m in mail_for(stack, "E-550")] == ["fine@example.cn"]

    async def dead():
        records = [
            json.loads(r.value)
            for r in await read_topic(stack["settings"].kafka_servers[0], "notifications-dlq")
        ]
        return [r for r in records if r["notification"]["event_id"] == "E-550"]

    [letter] = await eventually(dead, timeout=30)
    assert letter["reason"].startswith("SMTP 550") and letter["retriable"] is False
    assert letter["notification"]["address"] == "gone@example.cn"
    assert [step["step"] for step in letter["history"]] == ["attempt", "failed"]


async def test_a_failed_notification_replayed_from_the_dlq_is_sent_once_however_often_replayed(
    stack, state, monkeypatch, capsys
):
    for name, value in to_environ(stack["settings"]).items():
        monkeypatch.setenv(name, value)
    stack["sink"].replies["gone@example.cn"] = ["550 5.1.1 mailbox unavailable"]
    publish(
        stack["settings"].kafka_servers, [validate_event(business_event("E-REPLAY", "E-MIXED"))]
    )
    records = await delivered(state, "E-REPLAY", 4)
    [failed] = [r for r in records if r["status"] == "failed"]
    assert failed["recipient"] == "g***@example.cn"
    capsys.readouterr()

    async def listed():
        assert (
            await asyncio.to_thread(main, ["dlq", "list", "--json", "--topic", "notifications-dlq"])
            == 0
        )
        rows = [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")
        ]
        return [r for r in rows if r.get("event") == "E-REPLAY"]

    [row] = await eventually(listed, timeout=30)
    assert row["to"] == "g***@example.cn" and "gone@example.cn" not in json.dumps(row)
    assert row["reason"].startswith("SMTP 550")
    # the mailbox exists again: replay it (the sink's scripted 550 was used up)
    assert await asyncio.to_thread(main, ["dlq", "replay", row["name"]]) == 0
    assert "replayed onto notifications" in capsys.readouterr().out

    async def resent():
        record = await state.record(row["notification"])
        return record if record.get("status") == "sent" else None

    record = await eventually(resent, timeout=60)
    assert record["replays"] == "1"
    steps = [s["step"] for s in await state.steps(row["notification"])]
    assert steps[:2] == ["attempt", "failed"] and "replayed" in steps  # the history is kept
    for _ in range(2):  # replaying again sends nothing
        assert await asyncio.to_thread(main, ["dlq", "replay", row["name"]]) == 1
        assert "not replayed" in capsys.readouterr().out
    await asyncio.sleep(2)
    to_gone = [
        m
        for m in mail_for(stack, "E-REPLAY")
        if m["To"].addresses[0].addr_spec == "gone@example.cn"
    ]
    assert len(to_gone) == 1


async def test_the_unsubscribe_link_suppresses_the_next_reminder_of_that_category(stack, state):
    publish(
        stack["settings"].kafka_servers, [validate_event(graduate_event("E-UNSUB-1", "P-UNSUB"))]
    )
    await delivered(state, "E-UNSUB-1", 2)
    [message] = mail_for(stack, "E-UNSUB-1")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip("<>")
    assert link.startswith(stack["settings"].web_url + "/unsubscribe/?t=")

    page = await asyncio.to_thread(http, link)  # a GET only shows the confirmation page
    assert page[0] == 200 and "确认退订" in page[1]
    done = await asyncio.to_thread(http, link, b"List-Unsubscribe=One-Click")
    assert done[0] == 200 and "已退订" in done[1]
    assert (await asyncio.to_thread(http, link[:-4] + "AAAA", b""))[0] == 400  # a forged token

    publish(
        stack["settings"].kafka_servers, [validate_event(graduate_event("E-UNSUB-2", "P-UNSUB"))]
    )
    records = {r["channel"]: r for r in await delivered(state, "E-UNSUB-2", 2)}
    assert records["email"]["status"] == "suppressed"
    assert records["sms"]["status"] == "sent"  # the opt-out was for e-mail reminders only
    assert mail_for(stack, "E-UNSUB-2") == []


async def test_an_sms_reply_of_td_stops_reminders_but_not_safety_warnings(stack, state):
    reply = json.dumps({"from": "13900000015", "text": "TD"}).encode()
    status, body = await asyncio.to_thread(
        http, stack["settings"].web_url + "/sms/inbound/", reply, "application/json", signed(reply)
    )
    assert status == 200 and json.loads(body)["action"] == "opted_out"
    publish(
        stack["settings"].kafka_servers,
        [
            validate_event(business_event("E-TD-BIZ", "E-TD")),
            validate_event(weather_event("E-TD-WX", ["440306"])),
        ],
    )
    [reminder] = await delivered(state, "E-TD-BIZ", 1)
    [warning] = await delivered(state, "E-TD-WX", 1)
    assert (reminder["status"], warning["status"]) == ("suppressed", "sent")
    assert [to for to, _ in sms_for(stack, "E-TD-WX")] == ["+8613900000015"]


def http(
    url: str,
    data: bytes | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    sent = {"Content-Type": content_type} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers={**sent, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a local test server
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


async def test_a_cap_warning_and_its_cancel_reach_exactly_the_permit_holders(
    stack, state, tmp_path, monkeypatch, capsys
):
    from tests.unit.intake.test_cap import cap, info

    for name, value in to_environ(stack["settings"]).items():
        monkeypatch.setenv(name, value)
    issued = tmp_path / "gale.xml"
    issued.write_text(cap(identifier="44030841600000_20261122090000", sent=local_iso(-120),
                          infos=[info(expires="2099-01-01T00:00:00+08:00")]), encoding="utf-8")  # fmt: skip
    assert await asyncio.to_thread(main, ["cap", "ingest", str(issued)]) == 0
    assert (
        "published weather.warning.issued 44030841600000_20261122090000: gale yellow — 440308"
        in capsys.readouterr().out
    )
    await delivered(state, "CAP-44030841600000_20261122090000-Alert", 3)
    warned = sorted(to for to, _ in sms_for(stack, "CAP-44030841600000_20261122090000-Alert"))
    assert warned == ["+8613900000001", "+8613900000003", "+8613900000004"]

    cancel = tmp_path / "cancel.xml"
    cancel.write_text(cap(identifier="44030841600000_20261122120000", sent=local_iso(-60), msg_type="Cancel", infos=[],
                          references="shenzhen_meteorological_observatory,44030841600000_20261122090000,"
                                     "2026-11-22T09:00:00+08:00"), encoding="utf-8")  # fmt: skip
    assert await asyncio.to_thread(main, ["cap", "ingest", str(cancel)]) == 0
    await delivered(state, "CAP-44030841600000_20261122120000-Cancel", 3)
    all_clear = sms_for(stack, "CAP-44030841600000_20261122120000-Cancel")
    assert sorted(to for to, _ in all_clear) == warned
    assert all("已解除" in text for _, text in all_clear)


async def test_the_worker_refuses_a_hostile_cap_document_with_its_reason(stack):
    hostile = (
        b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>'
    )
    token = await cap_token(stack["settings"], "shenzhen_meteorological_observatory")
    status, body = await asyncio.to_thread(
        http, stack["settings"].web_url + "/cap/", hostile, "application/xml",
        {"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert status == 400 and "DOCTYPE" in json.loads(body)["refused"]
    assert stack["worker"].poll() is None
