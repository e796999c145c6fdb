"""A worker's /metrics and /health/ on the real stack (embedded broker, Redis, SMTP sink, SMS
outbox), scraped and parsed back with prometheus_client's parser: counters match what was
delivered, the latency histogram counts every hand-off, dead letters are counted by class, lag
rises while no worker consumes and returns to 0, and an SMTP outage turns /health/ to 503."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.access.tokens import token_hash
from app.core.errors import ConfigError
from app.core.settings import PROJECT_ROOT, Settings, to_environ
from app.intake.events import validate_event
from bench.harness import load_profiles, wait_until
from devstack.stack import SmtpSink, free_port, spawn, stop_process
from tests.conftest import LOGS, delete_prefix
from tests.helpers import TEST_SECRET, graduate_event, outbox_lines, person
from tests.integration.test_scenarios import cap_token, http
from wiring.faust_app import APP_ID
from wiring.health import Probe
from wiring.kafka import publish, publish_raw
from wiring.runtime import make_redis

pytestmark = pytest.mark.integration
RULE = "graduate-hukou-transfer"


@pytest.fixture(scope="module")
def stack(broker, redis_url, tmp_path_factory):
    prefix = f"test-metrics-{uuid.uuid4().hex[:8]}:"
    sink = SmtpSink.start()
    outbox = tmp_path_factory.mktemp("outbox") / "sms.jsonl"
    settings = Settings(secret=TEST_SECRET, kafka_url=broker.url, redis_url=redis_url, redis_prefix=prefix,
                        smtp_url=sink.url, quiet_hours="off", sms_url=f"file://{outbox}", web_port=free_port(),
                        partitions=2, retry_base_seconds=0.3, retry_max_seconds=1.0)  # fmt: skip
    running = {"settings": settings, "sink": sink, "outbox": outbox, "worker": None}

    def start():
        running["worker"] = spawn([sys.executable, "-m", "lifecycle", "worker"],
                                  LOGS / f"worker-{prefix[:-1]}.log",
                                  env={**os.environ, **to_environ(settings)}, cwd=PROJECT_ROOT)  # fmt: skip

    running["start"] = start
    start()
    yield running
    stop_process(running["worker"])
    sink.stop()
    asyncio.run(delete_prefix(redis_url, prefix))


async def up(stack) -> bool:
    def answers():
        try:
            return http(stack["settings"].web_url + "/health/")[0] in (200, 503)
        except OSError:
            return False

    return await wait_until(answers, 60, every=0.2)


async def scrape(stack, token) -> dict[tuple[str, tuple], float]:
    status, body = http(
        stack["settings"].web_url + "/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200, body
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}  # fmt: skip


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name, **labels) -> float:
    return sum(
        v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()
    )


async def test_metrics_need_a_metrics_token(stack):
    assert await up(stack)
    url = stack["settings"].web_url + "/metrics"
    assert http(url)[0] == 401
    stats_only = await cap_token(stack["settings"], scopes=("stats:read",), districts=("*",))
    assert http(url, headers={"Authorization": f"Bearer {stats_only}"})[0] == 403
    with pytest.raises(ConfigError, match="needs --district"):
        await cap_token(stack["settings"], scopes=("metrics:read",), districts=("440308",))
    token = await cap_token(stack["settings"], scopes=("metrics:read",), districts=("*",))
    samples = await scrape(stack, token)
    assert value(samples, "lifecycle_held_sends") == 0
    assert ("lifecycle_deferred_notifications", ()) in samples
    # a token narrowed in Redis after it was made no longer sees the deployment's metrics
    redis = make_redis(stack["settings"])
    try:
        key = f"{stack['settings'].redis_prefix}token:{token_hash(token)}"
        await redis.hset(key, "districts", json.dumps(["440308"]))
    finally:
        await redis.aclose()
    assert http(url, headers={"Authorization": f"Bearer {token}"})[0] == 403
    health = stack["settings"].web_url + "/health/"
    assert http(health, headers={"Authorization": f"Bearer {token}"})[0] == 403  # nor the detail
    status, body = http(health)
    assert status == 200 and json.loads(body) == {"status": "ok"}  # the verdict, for anyone


async def test_a_burst_is_counted_as_it_was_delivered(stack):
    assert await up(stack)
    settings = stack["settings"]
    token = await cap_token(settings, scopes=("metrics:read",), districts=("*",))
    before = await scrape(stack, token)
    people = [person(f"P-M{i}", mobile=f"1380000{i:04d}", email=f"m{i}@example.cn" if i % 2 else None)
              for i in range(40)]  # fmt: skip
    await load_profiles(settings, people)
    publish(
        settings.kafka_servers,
        [validate_event(graduate_event(f"E-M{i}", f"P-M{i}")) for i in range(40)],
    )
    publish_raw(settings.kafka_servers, "life-events", [(b"bad", b"{not json"), (b"bad2", json.dumps(
        {**graduate_event("E-MBAD", "P-M0"), "data": {}}).encode())])  # fmt: skip

    def sms_sent():
        return len([ln for ln in outbox_lines(stack["outbox"]) if ln["event_id"].startswith("E-M")])

    assert await wait_until(lambda: sms_sent() == 40 and len(stack["sink"].received()) >= 20, 90)
    await asyncio.sleep(1)
    after = await scrape(stack, token)

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert (
        delta("lifecycle_events_total", type="graduate.reception.approved", outcome="planned") == 40
    )
    assert (
        delta("lifecycle_events_total", type="graduate.reception.approved", outcome="rejected") == 1
    )
    assert delta("lifecycle_events_total", type="unknown", outcome="rejected") == 1
    assert (
        delta("lifecycle_dead_letters_total", topic="life-events-dlq", reason="invalid_json") == 1
    )
    assert delta("lifecycle_dead_letters_total", topic="life-events-dlq", reason="schema") == 1
    sms = delta("lifecycle_notifications_total", rule=RULE, channel="sms", status="sent")
    mail = delta("lifecycle_notifications_total", rule=RULE, channel="email", status="sent")
    assert (sms, mail) == (40, 20) == (sms_sent(), len(stack["sink"].received()))
    assert (
        delta("lifecycle_delivery_latency_seconds_count", channel="sms", category="reminder") == 40
    )
    assert (
        delta("lifecycle_delivery_latency_seconds_count", channel="email", category="reminder")
        == 20
    )
    assert delta("lifecycle_delivery_latency_seconds_sum") > 0
    # each graduate's journey (the shipped rule's follow-ups) started, none completed yet
    journeys = {"rule": RULE, "version": "1", "group": "reminded"}
    assert delta("lifecycle_outcome_journeys", **journeys, state="started") == 40
    assert delta("lifecycle_outcome_journeys", **journeys, state="open") == 40
    assert delta("lifecycle_outcome_journeys", **journeys, state="completed") == 0
    assert value(after, "lifecycle_gateway_up", channel="sms") == 1
    assert value(after, "lifecycle_gateway_up", channel="email") == 1
    assert value(after, "lifecycle_delivered_where_planned", channel="sms") == 1  # sends quick
    for (name, labels), _ in after.items():  # no id or address in any label
        for _, label in labels:
            assert (
                "P-M" not in label
                and "E-M" not in label
                and "@" not in label
                and "138" not in label
            )


async def test_lag_rises_while_no_worker_consumes_and_returns_to_0(stack):
    assert await up(stack)
    settings = stack["settings"]
    token = await cap_token(settings, scopes=("metrics:read",), districts=("*",))
    probe = Probe(settings.kafka_servers, APP_ID, ["life-events"])

    async def life_events_lag():
        lag = (await probe._lag()).items()
        return sum(v for (topic, _), v in lag if topic == "life-events")

    try:
        assert await wait_until(lambda: _zero(life_events_lag), 30)
        stop_process(stack["worker"])
        publish(
            settings.kafka_servers,
            [validate_event(graduate_event(f"E-LAG{i}", "P-NOBODY")) for i in range(25)],
        )
        # Tansu answers ListOffsets with its last record batch's base offset + 1: right when that
        # batch holds one record (Apache Kafka is right either way), so one more, alone
        publish(settings.kafka_servers, [validate_event(graduate_event("E-LAG25", "P-NOBODY"))])
        assert await life_events_lag() == 26  # measured against the partitions' current end
        stack["start"]()
        assert await up(stack)

        async def scraped_zero():
            samples = await scrape(stack, token)
            lags = [v for (n, ls), v in samples.items() if n == "lifecycle_consumer_lag"
                    and dict(ls)["topic"] == "life-events"]  # fmt: skip
            return len(lags) == 2 and sum(lags) == 0  # both partitions reported, idle ones at 0

        assert await wait_until(scraped_zero, 60, every=0.5)
    finally:
        await probe.close()


async def _zero(lag):
    return await lag() == 0


async def test_smtp_down_turns_health_to_503_and_the_gateway_gauge_to_0(stack):
    assert await up(stack)
    settings = stack["settings"]
    token = await cap_token(settings, scopes=("metrics:read",), districts=("*",))
    health = settings.web_url + "/health/"

    def status():
        return http(health, headers={"Authorization": f"Bearer {token}"})  # the detail too

    assert await wait_until(lambda: status()[0] == 200, 30)
    stack["sink"].stop()
    try:
        assert await wait_until(lambda: status()[0] == 503, 15, every=0.5)
        report = json.loads(status()[1])
        assert report["gateways"]["email"].startswith("SMTP unreachable")
        assert (
            report["gateways"]["sms"] == "ok"
            and report["redis"] == "ok"
            and report["kafka"] == "ok"
        )
        assert value(await scrape(stack, token), "lifecycle_gateway_up", channel="email") == 0
    finally:
        stack["sink"].resume()
    assert await wait_until(lambda: status()[0] == 200, 15, every=0.5)
    assert value(await scrape(stack, token), "lifecycle_gateway_up", channel="email") == 1
