"""Agents tested the Faust way, ``agent.test_context()``, with the app's producer connected to a
real (embedded) broker: what an agent sends to other topics is read back from those topics."""

import asyncio
import json
import threading

import pytest
import pytest_asyncio

from app.core.settings import Settings
from app.intake.events import validate_event
from app.notifications import Notification
from app.profiles.validate import parse_profile
from devstack.stack import SmtpSink, _SinkHandler
from tests.conftest import delete_prefix
from tests.helpers import TEST_SECRET, graduate_event, outbox_lines, person, read_topic
from wiring.faust_app import app, configure
from wiring.kafka import ensure_topics
from wiring.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="module")


class HoldingHandler:
    """The sink's own handler, but a message to an address in ``held`` waits (in the server's
    thread) until ``release`` is set; ``arrived`` is set when one does."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.inner = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.held & set(envelope.rcpt_tos):
            self.arrived.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return await self.inner.handle_DATA(server, session, envelope)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(broker, redis_url, tmp_path_factory):
    outbox = tmp_path_factory.mktemp("outbox") / "sms.jsonl"
    holding = HoldingHandler()
    sink = SmtpSink.start(handler=holding)
    holding.inner = _SinkHandler(sink)
    prefix = "test-agents:"
    await delete_prefix(redis_url, prefix)
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix, quiet_hours="off",
                        smtp_url=sink.url, sms_url=f"file://{outbox}", partitions=2)  # fmt: skip
    runtime = Runtime.build(settings)
    configure(settings, runtime)
    from topics import ALL  # noqa: PLC0415 - after configure, like the worker

    ensure_topics(settings.kafka_servers, [t.get_topic_name() for t in ALL], settings.partitions)
    app.flow_control.resume()
    await app.producer.start()
    yield {"settings": settings, "runtime": runtime, "sink": sink, "outbox": outbox,
           "holding": holding}  # fmt: skip
    await app.producer.stop()
    await runtime.close()
    sink.stop()
    await delete_prefix(redis_url, prefix)


async def flushed() -> None:
    await app.producer.flush()


async def test_malformed_event_is_dead_lettered_with_its_reason(running, broker):
    from agents.plan_notifications import plan_notifications

    async with plan_notifications.test_context() as agent:
        event = await agent.put(b'{"id": "broken', key=b"k-broken")
        assert agent.results[event.message.offset] == "rejected"
    await flushed()
    [record] = [
        r
        for r in await read_topic(f"127.0.0.1:{broker.port}", "life-events-dlq")
        if r.key == b"k-broken"
    ]
    assert record.value == b'{"id": "broken'  # the bytes as received
    assert dict(record.headers)["x-lifecycle-reason"].decode().startswith("invalid JSON")


async def test_a_valid_event_is_planned_and_delivered_where_it_is_planned(running, broker):
    """A graduate's SMS and e-mail go to the gateway from the planning agent itself, with their
    ``deliveries`` records, not through the `notifications` lane."""
    from agents.plan_notifications import plan_notifications

    await running["runtime"].profiles.upsert(
        parse_profile(person("P-AG1", mobile="13800138011", email="ag1@example.cn"))
    )
    async with plan_notifications.test_context() as agent:
        event = await agent.put(json.dumps(graduate_event("E-AG1", "P-AG1")).encode(), key=b"P-AG1")
        assert agent.results[event.message.offset] == "planned"
    await flushed()
    bootstrap = f"127.0.0.1:{broker.port}"
    outcomes = [json.loads(r.value) for r in await read_topic(bootstrap, "deliveries")]
    mine = sorted((o["channel"], o["status"]) for o in outcomes if o["event_id"] == "E-AG1")
    assert mine == [("email", "sending"), ("email", "sent"), ("sms", "sending"), ("sms", "sent")]
    [sms] = [line for line in outbox_lines(running["outbox"]) if line["event_id"] == "E-AG1"]
    assert sms["to"] == "+8613800138011"
    assert ["ag1@example.cn"] == [m["To"].addresses[0].addr_spec for m in running["sink"].received()
                                  if m["To"].addresses[0].addr_spec == "ag1@example.cn"]  # fmt: skip
    lane = [Notification.from_json(r.value) for r in await read_topic(bootstrap, "notifications")]
    assert [n for n in lane if n.event_id == "E-AG1"] == []
    counters = await running["runtime"].state.counters("events")
    assert (counters["received"], counters["planned"]) == (1, 2)


async def test_an_event_handled_again_sends_nothing_twice(running, broker):
    """A crash after the send and before the batch's offset was committed brings the event back:
    it is planned into the same notification ids, and what went is found settled."""
    from agents.plan_notifications import plan_notifications

    await running["runtime"].profiles.upsert(
        parse_profile(person("P-AG-TWICE", mobile="13800138012"))
    )
    doc = json.dumps(graduate_event("E-AG-TWICE", "P-AG-TWICE")).encode()
    async with plan_notifications.test_context() as agent:
        await agent.put(doc, key=b"P-AG-TWICE")
        await agent.put(doc, key=b"P-AG-TWICE")
    await flushed()
    sent = [line for line in outbox_lines(running["outbox"]) if line["event_id"] == "E-AG-TWICE"]
    assert [line["to"] for line in sent] == ["+8613800138012"]
    outcomes = [
        json.loads(r.value) for r in await read_topic(f"127.0.0.1:{broker.port}", "deliveries")
    ]
    assert sorted(o["status"] for o in outcomes if o["event_id"] == "E-AG-TWICE") == [
        "duplicate", "sending", "sent"]  # fmt: skip


async def test_the_next_batch_is_planned_while_one_is_delivered_and_acked_only_after(running):
    """While batch 1's e-mail waits for the SMTP server, batch 2 is planned; batch 2 is not
    delivered before batch 1 is, and neither event is acked (so neither can be committed)
    before its batch was delivered."""
    from agents.plan_notifications import plan_notifications

    profiles, state = running["runtime"].profiles, running["runtime"].state
    holding = running["holding"]
    await profiles.upsert(parse_profile(person("P-AHEAD1", email="ahead1@example.cn")))
    await profiles.upsert(parse_profile(person("P-AHEAD2", mobile="13800138041")))
    holding.held.add("ahead1@example.cn")
    try:
        async with plan_notifications.test_context() as agent:
            first = await agent.put(json.dumps(graduate_event("E-AHEAD1", "P-AHEAD1")).encode(),
                                    key=b"P-AHEAD1", wait=False)  # fmt: skip
            assert await asyncio.to_thread(holding.arrived.wait, 10), (
                "batch 1 never sent its e-mail"
            )
            second = await agent.put(json.dumps(graduate_event("E-AHEAD2", "P-AHEAD2")).encode(),
                                     key=b"P-AHEAD2", wait=False)  # fmt: skip
            for _ in range(500):
                if "planned" in [s["step"] for s in await state.steps("E-AHEAD2")]:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("batch 2 was not planned while batch 1 was delivered")
            await asyncio.sleep(0.2)  # time enough to send it, were it sent too early
            sent = [
                line for line in outbox_lines(running["outbox"]) if line["event_id"] == "E-AHEAD2"
            ]
            assert sent == []  # batch 2 waits for batch 1 to finish
            assert (first.message.acked, second.message.acked) == (False, False)
            assert agent.results == {}
            holding.release.set()
            for _ in range(500):
                if len(agent.results) == 2:
                    break
                await asyncio.sleep(0.01)
            assert agent.results == {0: "planned", 1: "planned"}
            assert (first.message.acked, second.message.acked) == (True, True)
    finally:
        holding.held.discard("ahead1@example.cn")
        holding.release.set()
    sent = [
        line["to"] for line in outbox_lines(running["outbox"]) if line["event_id"] == "E-AHEAD2"
    ]
    assert sent == ["+8613800138041"]
    assert [
        m
        for m in running["sink"].received()
        if m["To"].addresses[0].addr_spec == "ahead1@example.cn"
    ]


async def lane_and_sent(running, broker, event_id):
    """The notifications of ``event_id`` on the `notifications` lane, and the SMS it sent."""
    await flushed()
    lane = [Notification.from_json(r.value)
            for r in await read_topic(f"127.0.0.1:{broker.port}", "notifications")]  # fmt: skip
    sent = [line["to"] for line in outbox_lines(running["outbox"]) if line["event_id"] == event_id]
    return sorted((n.channel, n.address) for n in lane if n.event_id == event_id), sent


async def test_a_slow_channel_goes_by_its_lane_for_a_while(running, broker, monkeypatch):
    """A batch whose SMS took too long to hand over sends SMS by the lane (where a slow send holds
    up only the lane) until the rest is over; the e-mail still goes where it is planned."""
    from agents.plan_notifications import plan_notifications
    from app.delivery.shortcut import Shortcut

    rt = running["runtime"]
    now = [0.0]
    shortcut = Shortcut(slow_seconds=0.2, rest_seconds=30.0, clock=lambda: now[0])
    monkeypatch.setattr(rt, "shortcut", shortcut)
    monkeypatch.setattr(rt.deliverer, "on_sends", shortcut.took)
    sms = rt.deliverer.gateways["sms"]
    send_batch = sms.send_batch

    async def slowly(batch):
        await asyncio.sleep(0.3)  # a provider taking its time
        return await send_batch(batch)

    monkeypatch.setattr(sms, "send_batch", slowly)
    await rt.profiles.upsert(
        parse_profile(person("P-AG-SLOW", mobile="13800138013", email="slow@example.cn")))  # fmt: skip

    async def an_event(event_id):
        async with plan_notifications.test_context() as agent:
            await agent.put(json.dumps(graduate_event(event_id, "P-AG-SLOW")).encode(), key=b"k")
        return await lane_and_sent(running, broker, event_id)

    assert await an_event("E-AG-SLOW1") == ([], ["+8613800138013"])  # here, slowly
    assert not shortcut.open("sms") and shortcut.open("email")
    assert await an_event("E-AG-SLOW2") == ([("sms", "+8613800138013")], [])  # e-mail here
    now[0] = 31.0  # the rest is over: the SMS goes here again
    monkeypatch.setattr(sms, "send_batch", send_batch)
    assert await an_event("E-AG-SLOW3") == ([], ["+8613800138013"])
    assert shortcut.open("sms")


async def test_a_notification_claimed_elsewhere_goes_by_its_lane_not_waited_for(running, broker):
    """A worker that died mid-send holds its claims for the lease (a minute): the replayed event's
    notification it held is not waited for in the planning agent, which plans warnings too; it
    goes by its lane, which waits. The event's other notification goes here."""
    import time

    from agents.plan_notifications import plan_notifications

    rt = running["runtime"]
    await rt.profiles.upsert(
        parse_profile(person("P-AG-HELD", mobile="13800138016", email="held@example.cn")))  # fmt: skip
    doc = graduate_event("E-AG-HELD", "P-AG-HELD")
    plan = (await rt.planner.plan_event(validate_event(doc))).plan
    [sms] = [n for n in plan.notifications if n.channel == "sms"]
    assert await rt.state.claim(sms.id, "a-dead-worker:1234", 60_000)
    started = time.monotonic()
    async with plan_notifications.test_context() as agent:
        event = await agent.put(json.dumps(doc).encode(), key=b"P-AG-HELD")
        assert agent.results[event.message.offset] == "planned"
    assert time.monotonic() - started < 10  # not the lease
    assert await lane_and_sent(running, broker, "E-AG-HELD") == ([("sms", "+8613800138016")], [])
    mailed = [m["To"].addresses[0].addr_spec for m in running["sink"].received()]
    assert "held@example.cn" in mailed
    outcomes = [
        json.loads(r.value) for r in await read_topic(f"127.0.0.1:{broker.port}", "deliveries")
    ]
    assert sorted((o["channel"], o["status"]) for o in outcomes if o["event_id"] == "E-AG-HELD") == [
        ("email", "sending"), ("email", "sent")]  # the SMS's are the lane's to write  # fmt: skip


async def test_a_paced_channel_goes_here_only_with_a_token_in_hand(running, broker, monkeypatch):
    """Planning never waits for pacing: an SMS goes here only if the bucket holds a token for it
    now, and by its lane (where it waits for one) if not."""
    from agents.plan_notifications import plan_notifications
    from app.delivery.rate_limit import RateLimiter

    rt = running["runtime"]
    limiter = RateLimiter(rt.redis, rt.settings.redis_prefix + "paced:", {"sms": 2})
    monkeypatch.setattr(rt.deliverer, "limiter", limiter)
    for i in range(3):
        await rt.profiles.upsert(parse_profile(person(f"P-AG-PACE{i}", mobile=f"1380013803{i}")))
    docs = [json.dumps(graduate_event(f"E-AG-PACE{i}", f"P-AG-PACE{i}")).encode() for i in range(3)]
    await planned_as_one_batch(plan_notifications, docs)
    lanes = [await lane_and_sent(running, broker, f"E-AG-PACE{i}") for i in range(3)]
    here = [sent for lane, sent in lanes if sent]
    laned = [lane for lane, sent in lanes if lane]
    assert len(here) == 2 and len(laned) == 1, lanes  # a bucket of two tokens
    assert all(len(sent) == 1 for sent in here) and all(len(lane) == 1 for lane in laned)
    assert all(not (lane and sent) for lane, sent in lanes)  # each SMS one way, once
    assert await limiter.take_now("sms", 5) == 0  # both taken, none left


async def test_a_bucket_that_cannot_be_read_sends_by_the_lane_and_loses_nothing(
    running, broker, monkeypatch
):
    """Taking tokens fails for more than an outage (the bucket's key is not a hash): the SMS goes
    by its lane, the event is planned, and the agent goes on."""
    from agents.plan_notifications import plan_notifications
    from app.delivery.rate_limit import RateLimiter

    rt = running["runtime"]
    prefix = rt.settings.redis_prefix + "broken-bucket:"
    await rt.redis.set(f"{prefix}rate:sms", "not a bucket")
    monkeypatch.setattr(rt.deliverer, "limiter", RateLimiter(rt.redis, prefix, {"sms": 10}))
    await rt.profiles.upsert(parse_profile(person("P-AG-BUCKET", mobile="13800138017")))
    async with plan_notifications.test_context() as agent:
        doc = json.dumps(graduate_event("E-AG-BUCKET", "P-AG-BUCKET")).encode()
        event = await agent.put(doc, key=b"k")
        assert agent.results[event.message.offset] == "planned"
    assert await lane_and_sent(running, broker, "E-AG-BUCKET") == ([("sms", "+8613800138017")], [])


async def test_no_more_than_max_here_of_a_batch_are_delivered_here(running, broker, monkeypatch):
    import agents.plan_notifications as module

    monkeypatch.setattr(module, "MAX_HERE", 1)
    await running["runtime"].profiles.upsert(
        parse_profile(person("P-AG-MAX", mobile="13800138014", email="max@example.cn")))  # fmt: skip
    async with module.plan_notifications.test_context() as agent:
        await agent.put(json.dumps(graduate_event("E-AG-MAX", "P-AG-MAX")).encode(), key=b"k")
    lane, sent = await lane_and_sent(running, broker, "E-AG-MAX")
    mailed = [
        m["To"].addresses[0].addr_spec
        for m in running["sink"].received()
        if m["To"].addresses[0].addr_spec == "max@example.cn"
    ]
    here = [("sms", to) for to in sent] + [("email", to) for to in mailed]
    assert len(lane) == 1 and len(here) == 1, (lane, here)  # one here, the other by its lane
    assert {lane[0][0], here[0][0]} == {"sms", "email"}


async def test_when_delivering_here_fails_the_notifications_go_by_their_lane(
    running, broker, monkeypatch
):
    """Should delivering here fail outside the deliverer's own guard (the producer, a bug), the
    batch's notifications go by their lane: none is lost."""
    import agents.plan_notifications as module

    async def broken(batch, profiles=None, *, paced=False):
        raise RuntimeError("the producer is closed")

    monkeypatch.setattr(module, "deliver_planned", broken)
    await running["runtime"].profiles.upsert(
        parse_profile(person("P-AG-FAIL", mobile="13800138015")))  # fmt: skip
    async with module.plan_notifications.test_context() as agent:
        event = await agent.put(
            json.dumps(graduate_event("E-AG-FAIL", "P-AG-FAIL")).encode(), key=b"k"
        )
        assert agent.results[event.message.offset] == "planned"
    assert await lane_and_sent(running, broker, "E-AG-FAIL") == ([("sms", "+8613800138015")], [])


async def planned_as_one_batch(agent_, docs):
    """Put ``docs`` without waiting between them (so they form one batch); each one's result."""
    async with agent_.test_context() as agent:
        puts = [await agent.put(doc, key=b"k", wait=False) for doc in docs]
        for _ in range(200):
            if len(agent.results) == len(docs):
                break
            await asyncio.sleep(0.02)
        return [agent.results.get(p.message.offset) for p in puts]


async def test_a_batch_of_events_is_planned_each_on_its_own(running, broker):
    from agents.plan_notifications import plan_notifications

    for i in (3, 4):
        await running["runtime"].profiles.upsert(
            parse_profile(person(f"P-AGB{i}", mobile=f"1380013802{i}"))
        )
    docs = [json.dumps(graduate_event("E-AG3", "P-AGB3")).encode(), b"not json",
            json.dumps(graduate_event("E-AG-NOONE", "P-NO-SUCH-PROFILE")).encode(),
            json.dumps(graduate_event("E-AG4", "P-AGB4")).encode()]  # fmt: skip
    results = await planned_as_one_batch(plan_notifications, docs)
    assert results == ["planned", "rejected", "planned", "planned"]
    await flushed()
    sent = sorted((line["event_id"], line["to"]) for line in outbox_lines(running["outbox"]))
    assert [(e, a) for e, a in sent if e in ("E-AG3", "E-AG4", "E-AG-NOONE")] == [
        ("E-AG3", "+8613800138023"), ("E-AG4", "+8613800138024")
    ]  # fmt: skip
    state = running["runtime"].state
    steps = [s["step"] for s in await state.steps("E-AG-NOONE")]
    assert steps == ["received", "planned"]
    [planned_step] = [s for s in await state.steps("E-AG-NOONE") if s["step"] == "planned"]
    assert planned_step["skipped"] == [
        "graduate-hukou-transfer: no profile for subject P-NO-SUCH-PROFILE"
    ]


async def test_a_profile_that_does_not_decode_sets_aside_only_its_own_event(running, broker):
    from agents.plan_notifications import plan_notifications

    profiles = running["runtime"].profiles
    await profiles.upsert(parse_profile(person("P-AGOK", mobile="13800138031")))
    await profiles.redis.set(profiles.key("P-AGBAD"), b"{not json")  # damaged in Redis
    docs = [json.dumps(graduate_event("E-AGBAD", "P-AGBAD")).encode(),
            json.dumps(graduate_event("E-AGOK", "P-AGOK")).encode()]  # fmt: skip
    assert await planned_as_one_batch(plan_notifications, docs) == ["error", "planned"]
    await flushed()
    bootstrap = f"127.0.0.1:{broker.port}"
    [kept] = [r for r in await read_topic(bootstrap, "life-events-dlq") if r.value == docs[0]]
    assert (
        dict(kept.headers)["x-lifecycle-reason"]
        .decode()
        .startswith("internal error: JSONDecodeError")
    )
    sent = [(line["event_id"], line["to"]) for line in outbox_lines(running["outbox"])]
    assert [to for e, to in sent if e == "E-AGOK"] == ["+8613800138031"]
    assert [to for e, to in sent if e == "E-AGBAD"] == []


async def test_an_undecodable_notification_is_dead_lettered_as_received(running, broker):
    from agents.deliver_notifications import deliver_notifications

    async with deliver_notifications.test_context(concurrency=1) as agent:
        put = await agent.put(b'{"id": "half a notification"}', key=b"k-undecodable")
        assert agent.results[put.message.offset] == "undecodable"
    await flushed()
    [record] = [
        r
        for r in await read_topic(f"127.0.0.1:{broker.port}", "notifications-dlq")
        if r.key == b"k-undecodable"
    ]
    assert record.value == b'{"id": "half a notification"}'
    assert (
        dict(record.headers)["x-lifecycle-reason"].decode().startswith("undecodable notification")
    )


async def test_a_batch_whose_delivery_fails_unexpectedly_is_dead_lettered_as_received(
    running, broker, monkeypatch
):
    import agents.deliver_notifications as module

    await running["runtime"].profiles.upsert(parse_profile(person("P-AG9", mobile="13800138019")))
    plan = await running["runtime"].planner.plan(validate_event(graduate_event("E-AG9", "P-AG9")))
    [sms] = plan.notifications

    async def broken(batch, profiles=None):
        raise RuntimeError("the producer is gone")

    monkeypatch.setattr(module, "deliver_planned", broken)
    async with module.deliver_notifications.test_context(concurrency=1) as agent:
        put = await agent.put(sms.to_json(), key=b"k-broken")
        assert agent.results[put.message.offset] == "error"
    await flushed()
    [record] = [
        r for r in await read_topic(f"127.0.0.1:{broker.port}", "notifications-dlq")
        if r.key == b"k-broken"
    ]  # fmt: skip
    assert record.value == sms.to_json()
    assert b"RuntimeError" in dict(record.headers)["x-lifecycle-reason"]
    assert [line for line in outbox_lines(running["outbox"]) if line["id"] == sms.id] == []


async def test_notification_is_delivered_once_and_outcome_published(running, broker):
    from agents.deliver_notifications import deliver_notifications

    await running["runtime"].profiles.upsert(parse_profile(person("P-AG2", mobile="13800138012")))
    plan = await running["runtime"].planner.plan(validate_event(graduate_event("E-AG2", "P-AG2")))
    [sms] = plan.notifications
    # One actor: the test wrapper gives all actors one stream, and each actor's batching would see
    # every event (a worker gives each actor a stream of its own; the scenarios cover that).
    async with deliver_notifications.test_context(concurrency=1) as agent:
        first = await agent.put(sms.to_json(), key=sms.recipient.encode())
        second = await agent.put(sms.to_json(), key=sms.recipient.encode())
        assert [agent.results[first.message.offset], agent.results[second.message.offset]] == [
            "sent",
            "duplicate",
        ]
    await flushed()
    assert [line["to"] for line in outbox_lines(running["outbox"]) if line["id"] == sms.id] == [
        "+8613800138012"
    ]
    outcomes = [
        json.loads(r.value)
        for r in await read_topic(f"127.0.0.1:{broker.port}", "deliveries")
        if r.key == sms.id.encode()
    ]
    assert [o["status"] for o in outcomes] == ["sending", "sent", "duplicate"]
    assert {o["recipient"] for o in outcomes} == {
        "+86138****8012"
    }  # masked on the topic operators read


async def test_profiles_are_stored_deleted_and_bad_ones_dead_lettered(running, broker):
    from agents.store_profiles import store_profiles

    store = running["runtime"].profiles
    doc = json.dumps(person("P-AG3", mobile="13800138013"), ensure_ascii=False).encode()
    async with store_profiles.test_context() as agent:
        stored = await agent.put(doc, key=b"P-AG3")
        assert agent.results[stored.message.offset] == "inserted"
        assert (await store.get("P-AG3"))["mobile"] == "+8613800138013"
        deleted = await agent.put(None, key=b"P-AG3")
        assert agent.results[deleted.message.offset] == "deleted"
        assert await store.get("P-AG3") is None
        bad = await agent.put(json.dumps(person("P-AG4", mobile="123")).encode(), key=b"P-AG4")
        assert agent.results[bad.message.offset] == "rejected"
    await flushed()
    [record] = [
        r for r in await read_topic(f"127.0.0.1:{broker.port}", "profiles-dlq") if r.key == b"P-AG4"
    ]
    assert dict(record.headers)["x-lifecycle-reason"].decode().startswith("mobile:")


async def test_warnings_take_their_own_lane(running, broker, monkeypatch):
    """A warning that goes by a lane (its channel slow a moment ago) takes its own."""
    from agents.plan_notifications import plan_notifications
    from app.delivery.shortcut import Shortcut
    from tests.helpers import contact, enterprise, weather_event

    monkeypatch.setattr(running["runtime"], "shortcut", Shortcut())
    running["runtime"].shortcut.took("sms", 60.0)
    await running["runtime"].profiles.upsert(parse_profile(enterprise(
        "E-LANE", district="440306", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000077")])))  # fmt: skip
    async with plan_notifications.test_context() as agent:
        await agent.put(
            json.dumps(weather_event("E-LANE-WX", ["440306"]), ensure_ascii=False).encode(),
            key=b"E-LANE-WX",
        )
    await flushed()
    bootstrap = f"127.0.0.1:{broker.port}"
    warnings = [
        Notification.from_json(r.value)
        for r in await read_topic(bootstrap, "notifications-warning")
    ]
    others = [Notification.from_json(r.value) for r in await read_topic(bootstrap, "notifications")]
    assert [(n.event_id, n.address) for n in warnings if n.event_id == "E-LANE-WX"] == [
        ("E-LANE-WX", "+8613900000077")
    ]
    assert [n for n in others if n.event_id == "E-LANE-WX"] == []


async def test_a_chunk_that_cannot_be_planned_is_dead_lettered_not_lost(running, broker):
    from agents.plan_chunk import plan_chunk
    from app.intake.events import validate_event as validate
    from app.planning.fanout import chunk_commands

    [(key, value)] = chunk_commands(
        validate(weather_event_doc("E-CHUNK")), "no-such-rule", ["E-1"], 10
    )
    async with plan_chunk.test_context() as agent:
        put = await agent.put(value, key=key)
        assert agent.results[put.message.offset] == "unknown rule"
    await flushed()
    [record] = [
        r for r in await read_topic(f"127.0.0.1:{broker.port}", "life-events-dlq") if r.key == key
    ]
    assert record.value == value
    assert dict(record.headers)["x-lifecycle-reason"] == b"chunk for unknown rule 'no-such-rule'"


@pytest.mark.parametrize(
    ("chunk_batch_max", "batch_max", "batches"),
    [(1000, 2, [5, 5]), (2, 1, [2, 2, 1, 2, 2, 1])],  # whole, past LIFECYCLE_BATCH_MAX; bounded
)
async def test_a_warnings_chunk_is_delivered_where_it_is_planned_and_once_when_redelivered(
    running, broker, monkeypatch, chunk_batch_max, batch_max, batches
):
    """A warning's chunk goes straight to the gateway, not through notifications-warning, whole
    (or in batches of at most CHUNK_BATCH_MAX); the same chunk handled again (a crash before its
    offset was committed) sends nothing twice."""
    import dataclasses

    import agents.plan_chunk as module
    from agents.plan_chunk import plan_chunk
    from app.intake.events import validate_event as validate
    from app.planning.fanout import chunk_commands
    from tests.helpers import contact, enterprise

    rt = running["runtime"]
    monkeypatch.setattr(module, "CHUNK_BATCH_MAX", chunk_batch_max)
    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings, batch_max=batch_max))
    sizes: list[int] = []
    deliver_many = rt.deliverer.deliver_many

    async def counted(batch, profiles=None, **kwargs):
        sizes.append(len(batch))
        return await deliver_many(batch, profiles=profiles, **kwargs)

    monkeypatch.setattr(rt.deliverer, "deliver_many", counted)
    run = f"{chunk_batch_max}"
    ids = [f"E-INLINE-{run}-{i}" for i in range(5)]
    for i, eid in enumerate(ids):
        await running["runtime"].profiles.upsert(parse_profile(enterprise(
            eid, permits=("outdoor_advertising",), contacts=[contact("safety_officer", f"139{run[-1]}000810{i}")])))  # fmt: skip
    wx = f"E-INLINE-WX-{run}"
    [(key, value)] = chunk_commands(
        validate(weather_event_doc(wx)), "weather-outdoor-ads-warning", ids, 10
    )
    async with plan_chunk.test_context() as agent:
        first = await agent.put(value, key=key)
        again = await agent.put(value, key=key)
        assert agent.results[first.message.offset] == "delivered 5"
        assert agent.results[again.message.offset] == "delivered 5"
    await flushed()
    assert sizes == batches
    sent = [line for line in outbox_lines(running["outbox"]) if line["event_id"] == wx]
    assert sorted(line["to"] for line in sent) == [f"+86139{run[-1]}000810{i}" for i in range(5)]
    bootstrap = f"127.0.0.1:{broker.port}"
    lane = [
        Notification.from_json(r.value)
        for r in await read_topic(bootstrap, "notifications-warning")
    ]
    assert [n for n in lane if n.event_id == wx] == []
    outcomes = [json.loads(r.value) for r in await read_topic(bootstrap, "deliveries")]
    statuses = sorted(o["status"] for o in outcomes if o.get("event_id") == wx)
    assert statuses.count("sent") == 5 and statuses.count("duplicate") == 5, statuses


async def test_two_chunks_at_once_take_turns_planning_and_overlap_delivering(running, monkeypatch):
    """A worker works on two chunks at once (CHUNK_CONCURRENCY): one is planned while the other is
    delivered, never two plannings at once (the first chunk's SMS would wait for both); each
    recipient of both chunks gets one SMS."""
    import types

    import agents.plan_chunk as module
    from app.intake.events import validate_event as validate
    from app.planning.fanout import chunk_commands
    from tests.helpers import contact, enterprise

    rt = running["runtime"]
    ids = [f"E-TURNS-{i}" for i in range(4)]
    for i, eid in enumerate(ids):
        await rt.profiles.upsert(parse_profile(enterprise(
            eid, permits=("outdoor_advertising",), contacts=[contact("safety_officer", f"1390000840{i}")])))  # fmt: skip
    wx = "E-TURNS-WX"
    commands = chunk_commands(
        validate(weather_event_doc(wx)), "weather-outdoor-ads-warning", ids, 2
    )
    assert len(commands) == 2
    log: list[str] = []
    plan_chunk_command, deliver = rt.planner.plan_chunk_command, module.deliver_planned

    async def planning(command, event, rule):
        log.append(f"plan {command['chunk']}")
        await asyncio.sleep(0.05)  # as a chunk's profile read would: the other may go on
        chunk = await plan_chunk_command(command, event, rule)
        log.append(f"planned {command['chunk']}")
        return chunk

    async def delivering(batch, profiles=None):
        log.append("deliver")
        await asyncio.sleep(0.2)  # as the round trips and the gateway would
        statuses = await deliver(batch, profiles)
        log.append("delivered")
        return statuses

    monkeypatch.setattr(rt.planner, "plan_chunk_command", planning)
    monkeypatch.setattr(module, "deliver_planned", delivering)
    messages = [types.SimpleNamespace(key=k, value=v) for k, v in commands]
    results = await asyncio.gather(*(module.handle_chunk(m) for m in messages))
    assert results == ["delivered 2", "delivered 2"]
    plans = [e for e in log if e.startswith("plan")]
    assert plans[0].startswith("plan ") and plans[1].startswith("planned ")  # one, then the other
    assert plans[1][len("planned ") :] == plans[0][len("plan ") :]
    assert log.index("deliver") < log.index(plans[2]) < log.index("delivered")  # overlapped
    await flushed()
    sent = [line for line in outbox_lines(running["outbox"]) if line["event_id"] == wx]
    assert sorted(line["to"] for line in sent) == [f"+861390000840{i}" for i in range(4)]


async def test_a_warnings_chunk_holds_a_policy_sweep_until_it_is_done(running, monkeypatch):
    """While a warning's chunk is planned and delivered the worker's urgent work is marked, so a
    policy sweep between two batches waits; it goes on a quiet second after the chunk."""
    import agents.plan_chunk as module
    from app.intake.events import validate_event as validate
    from app.planning.fanout import chunk_commands
    from tests.helpers import contact, enterprise

    urgency = running["runtime"].urgency
    await running["runtime"].profiles.upsert(parse_profile(enterprise(
        "E-URGENT-0", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900008300")])))  # fmt: skip
    [(key, value)] = chunk_commands(
        validate(weather_event_doc("E-URGENT-WX")),
        "weather-outdoor-ads-warning",
        ["E-URGENT-0"],
        10,
    )
    real = module.deliver_planned
    seen: dict[str, object] = {}

    async def delivering(batch, profiles=None):
        seen["busy"] = urgency.busy()
        sweep = asyncio.create_task(urgency.pause(0.0))  # a sweep reaching its next batch
        await asyncio.sleep(0.3)
        seen["sweep waited"] = not sweep.done()
        seen["sweep"] = sweep
        return await real(batch, profiles)

    monkeypatch.setattr(module, "deliver_planned", delivering)
    waited_before = urgency.waited
    async with module.plan_chunk.test_context() as agent:
        put = await agent.put(value, key=key)
        assert agent.results[put.message.offset] == "delivered 1"
    assert seen["busy"] is True and seen["sweep waited"] is True
    assert urgency.active == 0
    await asyncio.wait_for(seen["sweep"], timeout=urgency.quiet + 5)  # goes on after the chunk
    assert urgency.waited == waited_before + 1


async def test_a_chunk_whose_delivery_fails_unexpectedly_is_dead_lettered_not_lost(
    running, broker, monkeypatch
):
    """Something outside the deliverer's own per-notification guard fails (the producer, a
    bug): the chunk goes to life-events-dlq with the reason, to be replayed; the agent goes on."""
    import agents.plan_chunk as module
    from app.intake.events import validate_event as validate
    from app.planning.fanout import chunk_commands
    from tests.helpers import contact, enterprise

    await running["runtime"].profiles.upsert(parse_profile(enterprise(
        "E-FAIL-0", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900008200")])))  # fmt: skip
    [(key, value)] = chunk_commands(
        validate(weather_event_doc("E-FAIL-WX")), "weather-outdoor-ads-warning", ["E-FAIL-0"], 10
    )

    async def broken(batch, profiles=None):
        raise RuntimeError("the producer is gone")

    monkeypatch.setattr(module, "deliver_planned", broken)
    async with module.plan_chunk.test_context() as agent:
        put = await agent.put(value, key=key)
        assert agent.results[put.message.offset] == "error"
    await flushed()
    [record] = [
        r for r in await read_topic(f"127.0.0.1:{broker.port}", "life-events-dlq") if r.key == key
    ]
    assert record.value == value
    assert b"RuntimeError" in dict(record.headers)["x-lifecycle-reason"]
    assert [
        line for line in outbox_lines(running["outbox"]) if line["event_id"] == "E-FAIL-WX"
    ] == []


def weather_event_doc(event_id):
    from tests.helpers import weather_event

    return weather_event(event_id, ["440308"])


async def test_faust_runs_with_the_batched_drain_loop_and_the_lean_monitor(running):
    """What configure() sets up for every worker (README, Performance): the drain loop that hands a
    fetched batch over at once, and a monitor that keeps only what Faust's stall detector reads."""
    from faust.transport.consumer import Consumer  # noqa: PLC0415

    from wiring.faust_app import LeanMonitor  # noqa: PLC0415

    assert getattr(Consumer._drain_messages, "batched", False)
    monitor = app.monitor
    assert isinstance(monitor, LeanMonitor)
    tp = app.topic("life-events").get_topic_name(), 0
    monitor.on_message_in(tp, 7, None)
    assert monitor.stream_inbound_time.get(tp) is None
    monitor.on_stream_event_in(tp, 7, None, None)
    assert monitor.stream_inbound_time[tp] > 0
    assert monitor.messages_received_total == 0 and monitor.events_total == 0


async def test_a_timer_step_that_fails_is_said_and_the_others_still_run(
    running, monkeypatch, caplog
):
    """The leader's tick: a bug in sending follow-ups must neither stop the worker (an exception
    out of a Faust timer does) nor keep the date reminders and policies from going out."""
    import agents.run_journeys as module

    ran = []

    async def broken(now):
        raise RuntimeError("a stored journey the planner chokes on")

    async def dates(now):
        ran.append("dates")
        return 0

    async def policies():
        ran.append("policies")
        return 0

    monkeypatch.setattr(module, "send_due", broken)
    monkeypatch.setattr(module, "send_due_dates", dates)
    monkeypatch.setattr(module, "send_due_policies", policies)
    await running["runtime"].redis.delete(f"{running['settings'].redis_prefix}jt:leader")
    await module.tick()  # returns: nothing escapes the tick
    assert ran == ["dates", "policies"]
    assert "cannot send due follow-ups" in caplog.text and "RuntimeError" in caplog.text


async def test_a_release_tick_that_fails_is_said_and_the_worker_goes_on(
    running, monkeypatch, caplog
):
    """An exception out of a Faust timer stops the worker: the cluster outage test met one (a
    connection closed under a write, before app.core.redis_patch) and all delivery stopped. A
    tick that fails now says so, and the next one tries again."""
    import agents.release_deferred as module

    state = running["runtime"].state
    calls = []

    async def broken(now):
        calls.append(now)
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    monkeypatch.setattr(state, "due", broken)
    await module.release_once(1.0)  # returns: nothing escapes the tick
    await module.release_once(2.0)
    assert calls == [1.0, 2.0]
    assert "releasing deferred notifications failed" in caplog.text
    assert "AttributeError" in caplog.text


async def test_an_idle_batching_agent_sleeps_until_an_event_comes(running, monkeypatch):
    """The take loop (wiring/faust_patches/take.py): with nothing to do it waits for the first
    event of a batch, not a wake-up every LIFECYCLE_BATCH_WAIT_MS; events that come together are
    handed over together, and the loop sleeps again after them."""
    from faust import streams  # noqa: PLC0415

    assert getattr(streams.Stream.take_events, "idle_sleeps", False)
    channel = app.channel()
    stream = app.stream(channel)
    waits: list[float | None] = []
    real_wait = stream.wait_for_stopped

    async def counting(*events, timeout=None):
        waits.append(timeout)
        return await real_wait(*events, timeout=timeout)

    monkeypatch.setattr(stream, "wait_for_stopped", counting)
    batches: list[list[int]] = []

    async def consume() -> None:
        async for batch in stream.take_events(10, within=0.005):
            batches.append([event.value for event in batch])

    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.5)  # idle: Faust's own loop would have woken ~100 times
        assert len(waits) <= 2 and None in waits
        for n in range(3):
            await channel.send(value=n)
        for _ in range(100):
            if batches:
                break
            await asyncio.sleep(0.01)
        assert batches == [[0, 1, 2]]
        idle_since = len(waits)
        await asyncio.sleep(0.5)
        assert len(waits) - idle_since <= 2  # asleep again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.stop()


async def ahead_on(channel_values, plan, finish):
    """Run ``planned_ahead`` on a stream of a fresh channel with ``plan`` and ``finish``; the
    task, the channel, the stream and what it yields."""
    from agents.common import planned_ahead  # noqa: PLC0415

    channel = app.channel()
    stream = app.stream(channel)
    results: list[list[str]] = []

    async def consume() -> None:
        async for statuses in planned_ahead(stream, plan, finish):
            results.append(statuses)

    task = asyncio.create_task(consume())
    for value in channel_values:
        await channel.send(value=value)
    return task, stream, results


async def until(condition, seconds=5.0):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("waited in vain")


async def test_planned_ahead_acks_what_was_taken_when_a_bug_escapes_and_says_it(running):
    """A bug escaping ``plan`` (the agents' own guards let nothing out on purpose) ends the
    loop with it, after the batch in finishing has finished; every event taken is acked, as
    Faust's ``take_events`` would, so that the partition's commits are not stuck behind it."""
    taken: list[list] = []
    finished: list[list] = []
    release = asyncio.Event()

    async def plan(batch):
        taken.append(list(batch))
        if len(taken) == 2:
            raise RuntimeError("a bug")
        return batch

    async def finish(batch):
        await release.wait()
        finished.append([e.value for e in batch])
        return ["done"] * len(batch)

    task, stream, results = await ahead_on([1], plan, finish)
    try:
        await until(lambda: len(taken) == 1)
        await stream.channel.send(value=2)
        await until(lambda: len(taken) == 2)
        await asyncio.sleep(0.05)
        assert not task.done()  # the batch in finishing is waited for
        release.set()
        with pytest.raises(RuntimeError, match="a bug"):
            await asyncio.wait_for(task, 5)
        assert finished == [[1]]
        assert [[e.message.acked for e in batch] for batch in taken] == [[True], [True]]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.stop()


async def test_planned_ahead_stopped_mid_batch_leaves_the_batch_unacked(running):
    """Cancelled (the worker stops) while a batch finishes: the batch is not acked, so its
    offsets are not committed and it comes again; the take loop is closed."""
    taken: list[list] = []
    finishing = asyncio.Event()

    async def plan(batch):
        taken.append(list(batch))
        return batch

    async def finish(batch):
        finishing.set()
        await asyncio.sleep(60)
        return ["done"] * len(batch)

    task, stream, results = await ahead_on([1, 2], plan, finish)
    try:
        await asyncio.wait_for(finishing.wait(), 5)
        processors = len(stream._processors)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert results == []
        assert all(not e.message.acked for batch in taken for e in batch)
        assert len(stream._processors) == processors - 1  # take_events' buffer is detached
    finally:
        await stream.stop()


async def test_planned_ahead_finishes_the_last_batch_when_the_stream_ends(running):
    """A stream that ends (a finite one; a worker's ends by being stopped): the batch still in
    finishing is finished, acked and its statuses yielded before the loop ends."""
    from agents.common import planned_ahead  # noqa: PLC0415

    class Finite:
        def __init__(self, batches: list[list[int]]) -> None:
            self.batches = batches
            self.acked: list[int] = []

        async def take_events(self, n, within, ack):
            for batch in self.batches:
                yield batch

        async def ack(self, event: int) -> None:
            self.acked.append(event)

    async def plan(batch):
        return batch

    async def finish(batch):
        await asyncio.sleep(0.05)
        return [f"done {e}" for e in batch]

    stream = Finite([[1], [2, 3]])
    results = [statuses async for statuses in planned_ahead(stream, plan, finish)]
    assert results == [["done 1"], ["done 2", "done 3"]]
    assert stream.acked == [1, 2, 3]


def raw_message(topic: str, offset: int, value: bytes):
    from faust.types import TP  # noqa: PLC0415
    from faust.types.tuples import Message  # noqa: PLC0415

    return Message(topic, 0, offset, 0.0, 0, None, None, value, None, tp=TP(topic, 0))


async def test_a_message_for_a_full_stream_buffer_waits_until_it_drained_without_a_task(running):
    """wiring/faust_patches/conductor.py: the handler Faust builds for a partition, finding its
    stream buffer full, waits until the buffer's reader has emptied it, then goes on; Faust's
    own would wait in a task per message, for one free slot. In order, none lost; one cancelled
    while it waits leaves the buffer as it was (Faust's own task would still put it)."""
    from faust.types import TP  # noqa: PLC0415

    from wiring.faust_patches.conductor import RoomFirst  # noqa: PLC0415

    topic = app.topic("test-room", key_serializer="raw", value_serializer="raw")
    topic = topic.clone(is_iterator=True, maxsize=2)  # what an agent's stream reads from
    handler = app.topics._build_handler(TP("test-room", 0), {topic})
    assert isinstance(handler, RoomFirst)
    queue = topic.queue
    for offset in (0, 1):
        await handler(raw_message("test-room", offset, b"%d" % offset))
    assert queue.full()
    tasks = asyncio.all_tasks()
    waiting = asyncio.create_task(handler(raw_message("test-room", 2, b"2")))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert asyncio.all_tasks() - tasks == {waiting}  # Faust's handler has a second, to put
    assert (await queue.get()).value == b"0"
    await asyncio.sleep(0.05)
    assert not waiting.done()  # one free slot is not enough: it waits for the buffer to drain
    assert (await queue.get()).value == b"1"
    assert (await asyncio.wait_for(queue.get(), 5)).value == b"2"  # found empty: the signal
    await asyncio.wait_for(waiting, 5)

    for offset in (3, 4):
        await handler(raw_message("test-room", offset, b"%d" % offset))
    signals = set(queue._pending_pressure_drop_callbacks)
    cancelled = asyncio.create_task(handler(raw_message("test-room", 5, b"5")))
    await asyncio.sleep(0.05)
    assert len(queue._pending_pressure_drop_callbacks) == len(signals) + 1
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert queue._pending_pressure_drop_callbacks == signals
    assert [queue.get_nowait().value for _ in range(queue.qsize())] == [b"3", b"4"]


async def test_a_raw_topic_s_bytes_become_the_event_as_faust_s_registry_would_make_it(running):
    """wiring/faust_patches/decode.py: for the project's raw topics the compiled decoder puts
    the key and value bytes (or None) into the event directly; what Faust's own decoder makes
    of the same messages is the same; a schema with a type is Faust's decoder alone."""
    from faust.serializers.schemas import Schema  # noqa: PLC0415

    from topics import life_events  # noqa: PLC0415
    from wiring.faust_patches import decode  # noqa: PLC0415

    channel = life_events.clone(is_iterator=True)  # what an agent's stream decodes with
    assert "decode_raw_directly" in channel.decode.__qualname__
    faust_s = decode.ORIGINAL(channel.schema, app)
    cases = [(b"k", b'{"id": 1}'), (None, b"v"), (b"k", None), (None, None), (b"", b"")]
    for offset, (key, value) in enumerate(cases):
        message = raw_message(life_events.get_topic_name(), offset, value)
        message.key = key
        message.headers = [("x-h", b"1")]
        ours, theirs = await channel.decode(message), await faust_s(message)
        assert (ours.key, ours.value, ours.headers, ours.message) == (
            theirs.key, theirs.value, theirs.headers, theirs.message)  # fmt: skip
        assert (ours.key, ours.value) == (key, value)
    odd = raw_message(life_events.get_topic_name(), 9, "text")  # not bytes: Faust's way
    assert (await channel.decode(odd)).value == b"text"
    typed = Schema(key_type=str, value_type=str, key_serializer="raw", value_serializer="raw")
    assert not decode.is_raw(typed)
    assert not decode.is_raw(Schema(key_serializer="json", value_serializer="raw"))
    assert decode.is_raw(channel.schema)
