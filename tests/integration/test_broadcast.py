"""A broadcast to a few thousand generated enterprises, with two workers running: exactly those
that match, once each; and the blast-radius guard holding a send far larger than usual."""

import asyncio
import uuid

import pytest

from app.core.settings import Settings, to_environ
from app.intake.events import validate_event
from bench.harness import Delivered, Workers, load_profiles, wait_until
from devstack.stack import SmtpSink, free_port
from lifecycle.cli import main
from tests.conftest import LOGS, delete_prefix
from tests.helpers import ON_BOTH_REDIS, ON_ONE_REDIS, TEST_SECRET, outbox_lines, weather_event
from wiring.kafka import publish

pytestmark = pytest.mark.integration

PER_GROUP = 1000


def enterprises():
    groups = (
        ("Y", "440308", ["outdoor_advertising"]),
        ("L", "440303", ["outdoor_advertising"]),
        ("N", "440308", []),
    )
    return [{"id": f"E-{g}{i:05d}", "kind": "enterprise", "name": f"企业{g}{i}", "district": district,
             "permits": permits, "contacts": [{"role": "safety_officer", "mobile": f"+86139{n * PER_GROUP + i:08d}"}]}
            for n, (g, district, permits) in enumerate(groups) for i in range(PER_GROUP)]  # fmt: skip


def mobiles(group: int) -> set[str]:
    return {f"+86139{group * PER_GROUP + i:08d}" for i in range(PER_GROUP)}


@pytest.fixture(scope="module")
def stack(broker, redis_url, tmp_path_factory):
    prefix = f"test-broadcast-{uuid.uuid4().hex[:6]}:"
    sink = SmtpSink.start()
    outbox = tmp_path_factory.mktemp("broadcast") / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix, smtp_url=sink.url,
                        sms_url=f"file://{outbox}", web_port=free_port(), partitions=4, quiet_hours="off",
                        fanout_chunk=200, blast_factor=1.5, blast_min_runs=1)  # fmt: skip
    asyncio.run(load_profiles(settings, enterprises()))
    asyncio.run(approve_first_run(settings, "weather-outdoor-ads-warning"))
    workers = Workers(settings, LOGS / prefix.rstrip(":"))
    first, second = workers.start(), workers.start()

    async def both_ready() -> None:
        assert await workers.ready(first) and await workers.ready(second), "a worker did not start"
        await asyncio.sleep(3)  # the rebalance that gives the second worker its partitions

    asyncio.run(both_ready())
    yield {
        "settings": settings,
        "outbox": outbox,
        "sink": sink,
        "workers": workers,
        "seen": Delivered(outbox, sink),
    }
    workers.stop_all()
    sink.stop()
    asyncio.run(delete_prefix(redis_url, prefix))


async def approve_first_run(settings: Settings, rule_id: str) -> None:
    """As the district would have: the rule's first large run was released by a person once."""
    from wiring.runtime import Runtime

    rt = Runtime.build(settings, deliver=False)
    try:
        await rt.guard.approve(rule_id, rt.rules.get(rule_id).version, by="test")
    finally:
        await rt.close()


def sent_for(stack, event_id):
    return [line for line in outbox_lines(stack["outbox"]) if line["event_id"] == event_id]


@ON_BOTH_REDIS
async def test_two_workers_deliver_a_broadcast_exactly_to_those_that_match_once_each(stack):
    publish(stack["settings"].kafka_servers, [validate_event(weather_event("BC-1", ["440308"]))])
    assert await wait_until(
        lambda: len(sent_for(stack, "BC-1")) >= PER_GROUP, timeout=240, every=0.5
    )
    await asyncio.sleep(3)
    lines = sent_for(stack, "BC-1")
    assert len(lines) == PER_GROUP and {line["to"] for line in lines} == mobiles(0)
    logs = sorted(stack["workers"].log_dir.glob("worker-*.log"))
    busy = [log for log in logs if " sent " in log.read_text(errors="replace")]
    assert len(busy) == 2, "both workers delivered part of the broadcast"
    chunked = [log for log in logs if "chunk(s) to fan out" in log.read_text(errors="replace")]
    assert chunked, "the audience was fanned out in chunks"


@ON_ONE_REDIS
async def test_a_send_far_larger_than_usual_is_held_until_an_operator_releases_it(
    stack, monkeypatch, capsys
):
    for name, value in to_environ(stack["settings"]).items():
        monkeypatch.setenv(name, value)
    await approvers(stack["settings"])
    publish(stack["settings"].kafka_servers, [validate_event(weather_event("BC-CITY", ["440300"]))])

    async def held():
        assert await asyncio.to_thread(main, ["held", "list"]) == 0
        out = capsys.readouterr().out
        return out if "BC-CITY" in out else None

    listing = await asyncio.wait_for(_poll(held), 120)
    assert "2000 messages is 2× the median of 1000" in listing
    [record] = [h for h in await held_records(stack["settings"])
                if h["id"] == "BC-CITY~weather-outdoor-ads-warning"]  # fmt: skip
    assert record["rule_version"] == 2  # whose author may not release it
    assert len(record["sample"]) == 3  # what an approver sees of it: masked, with the text
    assert all(
        s["channel"] == "sms" and "****" in s["to"] and "大风" in s["text"]
        for s in record["sample"]
    )

    def alerted() -> list[str]:
        return [m["To"].addresses[0].addr_spec for m in stack["sink"].received()
                if m["Subject"].startswith("[待审批]")]  # fmt: skip

    # the approvers for the whole city are told at once; Luohu's approver is not (not all of it)
    assert await wait_until(lambda: alerted() == ["sz-approver@example.cn"], timeout=30)
    [mail] = [m for m in stack["sink"].received() if m["Subject"].startswith("[待审批]")]
    assert "BC-CITY~weather-outdoor-ads-warning" in mail.get_body(("plain",)).get_content()
    await asyncio.sleep(2)
    assert sent_for(stack, "BC-CITY") == []  # nothing went out while held

    assert (
        await asyncio.to_thread(main, ["held", "release", "BC-CITY~weather-outdoor-ads-warning"])
        == 0
    )
    assert "10 chunk(s) published" in capsys.readouterr().out
    assert await wait_until(
        lambda: len(sent_for(stack, "BC-CITY")) >= 2 * PER_GROUP, timeout=240, every=0.5
    )
    await asyncio.sleep(3)
    lines = sent_for(stack, "BC-CITY")
    assert len(lines) == 2 * PER_GROUP and {line["to"] for line in lines} == mobiles(0) | mobiles(1)


async def held_records(settings: Settings) -> list:
    import redis.asyncio as aioredis

    from app.planning.blast import BlastGuard, BlastPolicy

    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        return await BlastGuard(redis, settings.redis_prefix, BlastPolicy()).held()
    finally:
        await redis.aclose()


async def approvers(settings: Settings) -> None:
    import redis.asyncio as aioredis

    from app.access.accounts import AccountStore

    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        accounts = AccountStore(redis, settings.redis_prefix)
        await accounts.put("sz-approver", "a long enough password", ["approver"], ["440300"],
                           email="sz-approver@example.cn")  # fmt: skip
        await accounts.put("lh-approver", "a long enough password", ["approver"], ["440303"],
                           email="lh-approver@example.cn")  # fmt: skip
    finally:
        await redis.aclose()


async def _poll(check):
    while True:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.5)
