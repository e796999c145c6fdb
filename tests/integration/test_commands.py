"""`lifecycle rules preview`, `lifecycle trace`, the worker's refusal without a broker, and
`lifecycle dev --once` on its own embedded stack."""

import json
import os
import re
import subprocess
import sys

import pytest

from app.core.settings import PROJECT_ROOT, Settings, to_environ
from app.intake.events import validate_event
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from devstack import demo
from devstack.dev import run_dev
from devstack.stack import free_port
from lifecycle.cli import main
from tests.helpers import TEST_SECRET, contact, enterprise, outbox_lines, person, weather_event
from wiring.runtime import make_redis


@pytest.fixture
def env(settings, monkeypatch):
    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)
    return settings


async def load(settings, *docs):
    redis = make_redis(settings)
    for doc in docs:
        await ProfileStore(redis, settings.redis_prefix).upsert(parse_profile(doc))
    await redis.aclose()


async def test_preview_shows_who_would_receive_what_and_sends_nothing(env, tmp_path, capsys):
    await load(env, enterprise("E-1", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900139000", name="王强")]),
               enterprise("E-2", permits=("outdoor_advertising",), contacts=[contact("legal_representative", "13700137000")]))  # fmt: skip
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(weather_event("W-PREVIEW", ["440308"]), ensure_ascii=False), encoding="utf-8"
    )
    assert (
        await _run_in_thread(
            ["rules", "preview", "weather-outdoor-ads-warning", "--event", str(event)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 recipient(s), 2 message(s) (sms 2)" in out
    assert "+86139****9000" in out and "+8613900139000" not in out
    assert "王*" in out
    assert "[UCS2," in out and "segment(s)]" in out
    assert "nothing was sent (dry run)" in out
    assert outbox_lines(tmp_path / "sms.jsonl") == []


async def test_preview_refuses_an_event_of_another_type(env, tmp_path, capsys):
    event = tmp_path / "event.json"
    event.write_text(json.dumps(weather_event("W-1", ["440308"])), encoding="utf-8")
    assert (
        await _run_in_thread(["rules", "preview", "graduate-hukou-transfer", "--event", str(event)])
        == 1
    )
    assert "listens to graduate.reception.approved" in capsys.readouterr().err


async def _run_in_thread(argv):
    import asyncio

    return await asyncio.to_thread(main, argv)


def test_worker_refuses_to_start_without_a_broker(settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")} | {
        "LIFECYCLE_REDIS_URL": settings.redis_url
    }
    done = subprocess.run([sys.executable, "-m", "lifecycle", "worker"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "LIFECYCLE_KAFKA_URL is not set" in done.stderr


def test_worker_refuses_an_unknown_event_loop(settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")} | {
        "LIFECYCLE_REDIS_URL": settings.redis_url, "LIFECYCLE_KAFKA_URL": "kafka://127.0.0.1:9",
        "LIFECYCLE_EVENT_LOOP": "trio"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "lifecycle", "worker"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "LIFECYCLE_EVENT_LOOP must be one of uvloop, asyncio, not 'trio'" in done.stderr


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (None, "lifecycle worker needs LIFECYCLE_SECRET"),
        ("dev-only-secret-change-me", "published development value"),
        ("short-secret", "shorter than 32 characters"),
    ],
)
def test_worker_refuses_a_development_secret_or_none(settings, secret, says):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")} | {
        "LIFECYCLE_REDIS_URL": settings.redis_url, "LIFECYCLE_KAFKA_URL": "kafka://127.0.0.1:9"}  # fmt: skip
    if secret:
        env["LIFECYCLE_SECRET"] = secret
    done = subprocess.run([sys.executable, "-m", "lifecycle", "worker"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_dev_makes_its_own_secret_and_keeps_it(tmp_path):
    from devstack.dev import dev_secret

    first = dev_secret(tmp_path)
    assert len(first) >= 32 and dev_secret(tmp_path) == first
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert dev_secret(tmp_path / "other") != first


async def test_dev_once_replays_the_demo_and_delivers_everything(
    redis_url, prefix, tmp_path, capsys
):
    settings = Settings(
        secret=TEST_SECRET, redis_url=redis_url, redis_prefix=prefix, web_port=free_port()
    )
    assert await run_dev(settings, once=True, timeout=120, var=tmp_path) == 0
    out = capsys.readouterr().out
    counted = re.search(r"(\d+) of (\d+) notification\(s\) sent", out)
    assert counted and counted[1] == counted[2]
    warned = {c["mobile"] for e in demo.enterprises() if "outdoor_advertising" in e["permits"] and e["district"] == demo.YANTIAN
              for c in ([x for x in e["contacts"] if x["role"] == "safety_officer"] or e["contacts"])}  # fmt: skip
    weather = [
        line
        for line in outbox_lines(tmp_path / "outbox" / "sms.jsonl")
        if line["rule_id"] == "weather-outdoor-ads-warning"
    ]
    assert {line["to"] for line in weather} == warned
    assert (
        len(list((tmp_path / "outbox" / "mail").glob("*.eml"))) == 2
    )  # the graduate's and the new business's
    # the graduate's journey was ended by the completion event, before any reminder; the
    # completion notice and the identity-card reminder (a date, not an event) went out
    assert re.search(r"journey j-\w+ \(毕业生接收 → 户籍迁入, rule graduate-hukou-transfer\): "
                     r"completed, 0 follow-up\(s\) sent, ended by DEMO-\d+-HK", out), out  # fmt: skip
    rules = {line["rule_id"] for line in outbox_lines(tmp_path / "outbox" / "sms.jsonl")}
    assert {"hukou-migration-completed", "id-card-renewal"} <= rules
    assert "graduate-hukou-transfer" in rules


async def test_trace_prints_the_steps_of_an_event(env, capsys):
    from app.state import DeliveryState

    redis = make_redis(env)
    state = DeliveryState(redis, env.redis_prefix)
    await state.trace("E-T", "received", type="graduate.reception.approved")
    await state.trace("E-T", "planned", rules=["graduate-hukou-transfer"], notifications=["n-1"])
    await redis.aclose()
    assert await _run_in_thread(["trace", "E-T"]) == 0
    out = capsys.readouterr().out
    assert "event E-T" in out and "received" in out and "rules=['graduate-hukou-transfer']" in out
    assert await _run_in_thread(["trace", "NOPE"]) == 1


def test_validate_event_accepts_every_demo_event():
    for _, doc in demo.scenario_events("T"):
        validate_event(doc)


def test_tokens_are_shown_once_stored_hashed_listed_and_revoked(settings, monkeypatch, capsys):
    import asyncio

    import redis

    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)
    assert main(["tokens", "add", "cma", "--scope", "cap:publish", "--cap-sender", "sz_meteo",
                 "--district", "440300"]) == 0  # fmt: skip
    token = capsys.readouterr().out.splitlines()[-1]
    assert token.startswith("lct_") and len(token) > 40
    client = redis.Redis.from_url(settings.redis_url)
    keys = [k.decode() for k in client.scan_iter(f"{settings.redis_prefix}token*")]
    assert keys and all(token not in k for k in keys)  # only its hash is stored
    assert not any(token.encode() in (client.dump(k) or b"") for k in keys)
    assert main(["tokens", "list"]) == 0
    assert "cma: cap:publish; districts 440300; CAP senders sz_meteo" in capsys.readouterr().out
    assert main(["tokens", "add", "bad", "--scope", "cap:publish", "--district", "440300"]) == 2
    # no sender named
    assert "must name the CAP senders" in capsys.readouterr().err
    assert main(["tokens", "add", "bad", "--scope", "root", "--district", "440300"]) == 2
    assert main(["tokens", "add", "bad", "--scope", "held:read"]) == 2  # no district
    assert "at least one --district" in capsys.readouterr().err
    assert main(["tokens", "revoke", "cma"]) == 0
    from app.access.tokens import TokenStore
    from wiring.runtime import make_redis

    async def lookup():
        r = make_redis(settings)
        try:
            return await TokenStore(r, settings.redis_prefix).caller(token)
        finally:
            await r.aclose()

    assert asyncio.run(lookup()) is None


def test_cap_ingest_reads_dev_zero_only_up_to_its_bound(settings, monkeypatch, capsys):
    for name, value in to_environ(settings).items():
        monkeypatch.setenv(name, value)
    assert main(["cap", "ingest", "/dev/zero"]) == 1
    assert "the limit is" in capsys.readouterr().err


async def test_dates_schedule_puts_profiles_stored_before_a_date_rule_on_the_schedule(env, capsys):
    from datetime import date, timedelta

    from wiring.runtime import Runtime

    expiring = (date.today() + timedelta(days=200)).isoformat()
    # stored by a bare store (no schedule kept), as profiles stored before the rule existed
    await load(env, person("P-DS1", mobile="13800000901") | {"dates": {"id_card_expiry": expiring}},
               person("P-DS2", mobile="13800000902"))  # fmt: skip
    rt = Runtime.build(env, deliver=False)
    try:
        assert await rt.planner.dated.queue.when("id-card-renewal", "P-DS1") is None
        assert await _run_in_thread(["dates", "schedule"]) == 0
        assert "2 profile(s) read; 1 date reminder(s) scheduled" in capsys.readouterr().out
        assert await rt.planner.dated.queue.when("id-card-renewal", "P-DS1") is not None
    finally:
        await rt.close()
