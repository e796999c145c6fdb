"""Poison never costs a neighbour. Hypothesis interleaves generated poison (JSON nested thousands
deep, integers of thousands of digits, messages over 1 MB, invalid UTF-8, random bytes, events
against their schema) with valid events on one partition of `life-events`, consumed by a real
worker process; every valid event is delivered exactly once and every poison message is on
`life-events-dlq` with its reason (a bounded copy, with size and hash, when it is large)."""

import asyncio
import hashlib
import json
import os
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from app.core.settings import PROJECT_ROOT, Settings, to_environ
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from devstack.stack import free_port, spawn, stop_process
from tests.conftest import LOGS, delete_prefix
from tests.helpers import TEST_SECRET, eventually, graduate_event, outbox_lines, person, read_topic
from wiring.runtime import make_redis

pytestmark = pytest.mark.integration

BIG = 1_100_000  # over Kafka's default 1 MB message limit once copied as it is


@pytest.fixture(scope="module")
def worker(broker, redis_url, tmp_path_factory):
    prefix = f"test-poison-{uuid.uuid4().hex[:8]}:"
    outbox = tmp_path_factory.mktemp("outbox") / "sms.jsonl"
    config = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix,
                      smtp_url="smtp://127.0.0.1:1", sms_url=f"file://{outbox}", quiet_hours="off",
                      web_port=free_port(), partitions=2)  # fmt: skip
    proc = spawn([sys.executable, "-m", "lifecycle", "worker"], LOGS / f"worker-{prefix[:-1]}.log",
                 env={**os.environ, **to_environ(config)}, cwd=PROJECT_ROOT)  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=config.kafka_servers, max_request_size=4 * BIG,
                             acks="all")  # fmt: skip
    yield {"settings": config, "outbox": outbox, "producer": producer, "proc": proc}
    producer.close()
    stop_process(proc)
    asyncio.run(delete_prefix(redis_url, prefix))


def _wrong_schema(n: int) -> bytes:
    event = graduate_event(f"E-BAD-{n}", "P-NOBODY")
    del event["data"]["approval_no"]
    return json.dumps(event).encode()


POISON = st.one_of(
    st.integers(1_000, 20_000).map(lambda d: b"[" * d + b"]" * d),
    st.integers(1_000, 20_000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
    st.integers(4_400, 6_000).map(
        lambda n: b'{"id": "E-INT", "type": "x", "n": ' + b"9" * n + b"}"
    ),
    st.integers(BIG, BIG + 1000).map(lambda n: b'{"id": "' + b"a" * n + b'"}'),
    st.binary(min_size=1, max_size=300).map(lambda b: b"\xff" + b),
    st.text(max_size=200).map(lambda t: ("{" + t).encode("utf-8", "surrogatepass")),
    st.integers(0, 10**6).map(_wrong_schema),
    st.just(b"null"),
    st.just(b"   "),
)
# Each message: poison (False) or a valid event (True), in any order.
BATCHES = st.lists(st.one_of(POISON, st.just(True)), min_size=4, max_size=24).filter(
    lambda items: any(i is True for i in items) and any(i is not True for i in items)
)


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])  # fmt: skip
@given(items=BATCHES)
def test_poison_interleaved_with_valid_events_loses_none_of_them(worker, items):
    asyncio.run(_run(worker, items))


async def _run(worker, items) -> None:
    config = worker["settings"]
    run = uuid.uuid4().hex[:8]
    valid: list[str] = []
    poison: dict[bytes, bytes] = {}
    redis = make_redis(config)
    store = ProfileStore(redis, config.redis_prefix)
    try:
        for n, item in enumerate(items):
            if item is True:
                subject = f"P-POI-{run}-{n}"
                await store.upsert(
                    parse_profile(
                        person(subject, mobile=f"139{n:04d}{int(run[:4], 16) % 10000:04d}")
                    )
                )
                event = graduate_event(f"E-POI-{run}-{n}", subject)
                valid.append(event["id"])
                worker["producer"].send("life-events", json.dumps(event).encode(),
                                        key=subject.encode(), partition=0)  # fmt: skip
            else:
                key = f"poison-{run}-{n}".encode()
                poison[key] = item
                worker["producer"].send("life-events", item, key=key, partition=0)
        worker["producer"].flush()

        async def all_sent():
            lines = [line for line in outbox_lines(worker["outbox"]) if line["event_id"] in valid]
            return lines if len({line["event_id"] for line in lines}) == len(valid) else None

        await eventually(all_sent, timeout=120)
        await asyncio.sleep(1.0)  # anything sent twice would be in the outbox by now
        sent = [
            line["event_id"] for line in outbox_lines(worker["outbox"]) if line["event_id"] in valid
        ]
        assert sorted(sent) == sorted(valid), "every valid event delivered exactly once"

        async def all_dead_lettered():
            records = await read_topic(f"127.0.0.1:{config.kafka_servers[0].rsplit(':', 1)[1]}",
                                       "life-events-dlq")  # fmt: skip
            mine = {r.key: r for r in records if r.key in poison}
            return mine if len(mine) == len(poison) else None

        letters = await eventually(all_dead_lettered, timeout=60)
        for key, record in letters.items():
            headers = dict(record.headers)
            assert headers["x-lifecycle-reason"], "each with its reason"
            original = poison[key]
            if len(original) > 256 * 1024:
                assert headers["x-lifecycle-size"] == str(len(original)).encode()
                assert (
                    headers["x-lifecycle-sha256"] == hashlib.sha256(original).hexdigest().encode()
                )
                assert original.startswith(record.value)
            else:
                assert record.value == original, "the bytes as received"
        assert worker["proc"].poll() is None, "the worker is still running"
    finally:
        await redis.aclose()


def test_an_oversized_planned_notification_is_refused_at_planning_with_rule_and_masked_recipient():
    from app.intake.events import validate_event
    from app.notifications import Notification
    from app.planning.planner import MAX_NOTIFICATION_BYTES, Plan, refuse_oversized

    def notification(nid: str, text: str) -> Notification:
        return Notification(id=nid, rule_id="r-big", rule_version=1, category="reminder",
                            event_id="E-1", event_type="graduate.reception.approved", channel="sms",
                            profile_id="P-1", recipient="P-1", recipient_name=None, role=None,
                            address="+8613800138000", language="zh-CN", planned_at="2026-12-01T00:00:00Z",
                            content={"text": text})  # fmt: skip

    plan = Plan(validate_event(graduate_event("E-1", "P-1")))
    plan.notifications += [
        notification("n-small", "ok"),
        notification("n-big", "x" * MAX_NOTIFICATION_BYTES),
    ]
    encoded = refuse_oversized(plan)
    assert [n.id for n in plan.notifications] == ["n-small"] and list(encoded) == ["n-small"]
    [(rule, reason)] = plan.skipped
    assert rule == "r-big" and "+86138****8000" in reason and "13800138000" not in reason
