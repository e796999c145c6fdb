"""The worker's port is no back door: attacks tried on a running worker (its own process, the
embedded broker, real Redis), each kept as a test. Forged CAP alerts, releases, opt-outs and
unsubscribe links are refused, and nothing is sent or opted out because of them."""
# ruff: noqa: F811 - the stack and state fixtures are imported from test_scenarios

import asyncio
import json
import time
import uuid

import pytest

from app.core.errors import ConfigError
from app.core.timestamps import local_iso
from app.delivery.preferences import Preferences
from app.delivery.unsubscribe import UnsubscribeLinks
from app.intake.events import validate_event
from app.planning.blast import BlastGuard, BlastPolicy
from tests.helpers import TEST_SECRET, weather_event
from tests.integration.test_scenarios import (  # noqa: F401 - stack and state are fixtures
    cap_token,
    delivered,
    http,
    signed,
    sms_for,
    stack,
    state,
)
from tests.unit.intake.test_cap import cap, info
from wiring.kafka import publish
from wiring.runtime import make_redis

pytestmark = pytest.mark.integration

SENDER = "shenzhen_meteorological_observatory"


def alert(identifier: str, sender: str = SENDER) -> bytes:
    doc = cap(
        identifier=identifier, sender=sender, infos=[info(expires="2099-01-01T00:00:00+08:00")]
    )
    return doc.encode("utf-8")


@pytest.fixture(scope="module", autouse=True)
def serving(stack):
    """The worker's web server answers (it starts a few seconds after the process)."""

    def up():
        try:
            return http(stack["settings"].web_url + "/health/")[0] == 200
        except OSError:
            return None

    deadline = time.monotonic() + 60
    while not up():
        assert time.monotonic() < deadline, "the worker's web server never answered"
        time.sleep(0.2)


async def post(stack, path, body, content_type="application/xml", headers=None):
    return await asyncio.to_thread(
        http, stack["settings"].web_url + path, body, content_type, headers
    )


async def get(stack, path, headers=None):
    return await asyncio.to_thread(http, stack["settings"].web_url + path, None, "", headers)


async def nothing_for(stack, state, event_id: str, wait: float = 3.0) -> bool:
    """After ``wait`` seconds, nothing was planned or sent for ``event_id``."""
    await asyncio.sleep(wait)
    return not await state.notifications_of(event_id) and not sms_for(stack, event_id)


async def test_a_forged_cap_alert_without_a_token_is_refused_and_sends_nothing(stack, state):
    status, body = await post(stack, "/cap/", alert("FORGED_NO_TOKEN"))
    assert status == 401 and "bearer token" in json.loads(body)["error"]
    status, _ = await post(stack, "/cap/", alert("FORGED_BAD_TOKEN"),
                           headers={"Authorization": "Bearer lct_" + "A" * 43})  # fmt: skip
    assert status == 401
    assert await nothing_for(stack, state, "CAP-FORGED_NO_TOKEN-Alert")
    assert await nothing_for(stack, state, "CAP-FORGED_BAD_TOKEN-Alert", wait=0)


async def test_a_cap_token_speaks_only_for_its_own_senders(stack, state):
    token = await cap_token(stack["settings"], "yantian_weather_office")
    status, body = await post(stack, "/cap/", alert("OTHER_SENDER", sender=SENDER),
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 400
    assert "is not one this token may speak for" in json.loads(body)["refused"]
    assert await nothing_for(stack, state, "CAP-OTHER_SENDER-Alert")


async def test_a_token_without_the_scope_is_forbidden(stack):
    token = await cap_token(stack["settings"], scopes=("held:read",))
    headers = {"Authorization": f"Bearer {token}"}
    assert (await post(stack, "/cap/", alert("WRONG_SCOPE"), headers=headers))[0] == 403
    assert (await post(stack, "/held/any/release/", b"", headers=headers))[0] == 403
    status, body = await get(stack, "/held/", headers)
    assert status == 200 and "held" in json.loads(body)


async def test_held_sends_are_neither_shown_nor_released_without_a_token(stack):
    assert (await get(stack, "/held/"))[0] == 401
    assert (await post(stack, "/held/H-anything/release/", b""))[0] == 401
    assert (await get(stack, "/stats/"))[0] == 401
    token = await cap_token(
        stack["settings"], scopes=("held:release", "stats:read"), districts=("*",)
    )
    headers = {"Authorization": f"Bearer {token}"}
    assert (await post(stack, "/held/H-nothing/release/", b"", headers=headers))[0] == 404
    assert (await get(stack, "/stats/", headers))[0] == 200


async def test_unsigned_forged_or_replayed_td_replies_opt_nobody_out(stack, state):
    settings = stack["settings"]
    number = "+8613900000099"
    reply = json.dumps({"from": number, "text": "TD"}).encode()
    attempts = [
        {},  # unsigned
        signed(reply, secret="not-the-providers-secret"),
        signed(reply, at=time.time() - 3600),  # stale
        {**signed(reply), "X-Lifecycle-Timestamp": str(int(time.time()) + 1)},  # tampered
    ]
    for headers in attempts:
        status, _ = await post(stack, "/sms/inbound/", reply, "application/json", headers)
        assert status == 401
    redis = make_redis(settings)
    try:
        preferences = Preferences(redis, settings.redis_prefix, TEST_SECRET)
        assert await preferences.opt_outs(number) == set()
        good = signed(reply)
        assert (await post(stack, "/sms/inbound/", reply, "application/json", good))[0] == 200
        assert (await post(stack, "/sms/inbound/", reply, "application/json", good))[0] == 401
        assert await preferences.opt_outs(number) == {"*:sms"}
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00garbage", b"[1, 2]", b'{"from": 13900000015, "text": "TD"}',
     b'{"from": "x", "text": "TD"}', b"[" * 10_000, b'{"text": "TD"}', b""],
)  # fmt: skip
async def test_odd_inbound_bodies_get_a_clear_400_never_a_500(stack, body):
    status, text = await post(stack, "/sms/inbound/", body, "application/json", signed(body))
    assert status == 400 and "expected" in json.loads(text)["error"]


async def test_an_oversized_inbound_body_is_refused_unread(stack):
    body = b"x" * 100_000
    assert (await post(stack, "/sms/inbound/", body, "application/json", signed(body)))[0] == 413


async def test_unsubscribe_links_signed_with_another_secret_or_expired_are_refused(stack, state):
    settings = stack["settings"]
    forged = UnsubscribeLinks(settings.web_url, "dev-only-secret-change-me")
    expired = UnsubscribeLinks(settings.web_url, TEST_SECRET, ttl_seconds=-1)
    for links in (forged, expired):
        url = links.url("+8613900000001", "warning", "sms")
        assert "13900000001" not in url  # the link carries no readable number
        assert (await asyncio.to_thread(http, url, b""))[0] == 400
    # the safety officer still gets the next warning
    publish(settings.kafka_servers, [validate_event(weather_event("E-UNSUB-FORGED", ["440308"]))])
    await delivered(state, "E-UNSUB-FORGED", 3)
    assert "+8613900000001" in [to for to, _ in sms_for(stack, "E-UNSUB-FORGED")]


def test_the_worker_listens_on_loopback_only(stack):
    port = stack["settings"].web_port
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state_code = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state_code == "0A" and int(port_hex, 16) == port:  # LISTEN
                listening.add(address)
    assert listening == {"0100007F"}, listening  # 127.0.0.1, and nothing else


async def test_a_valid_cap_alert_over_1_mb_is_read_whole_and_accepted(stack, state):
    token = await cap_token(stack["settings"], SENDER)
    headers = {"Authorization": f"Bearer {token}"}
    note = (
        "<note>" + "本预警由市气象台发布。" * 40_000 + "</note>"
    )  # 1.3 MB: many reads of the body
    doc = cap(identifier="BIG_VALID", sender=SENDER, sent=local_iso(-60), header_extra=note,
              infos=[info(expires="2099-01-01T00:00:00+08:00")]).encode()  # fmt: skip
    assert len(doc) > 1_000_000
    status, body = await post(stack, "/cap/", doc, headers=headers)
    assert status == 202, body
    assert json.loads(body)["published"] == ["CAP-BIG_VALID-Alert"]
    # found by this test: an alert whose texts make an event too large for the topic was a 500
    huge = cap(identifier="BIG_TEXT", sender=SENDER, sent=local_iso(-60),
               infos=[info(expires="2099-01-01T00:00:00+08:00", instruction="请注意防风。" * 70_000)]).encode()  # fmt: skip
    status, body = await post(stack, "/cap/", huge, headers=headers)
    assert status == 400 and "an event is at most" in json.loads(body)["refused"]
    assert stack["worker"].poll() is None


async def test_a_cap_document_over_the_limit_is_refused_unread(stack):
    token = await cap_token(stack["settings"], SENDER)
    doc = b"<alert>" + b" " * (3 * 1024 * 1024) + b"</alert>"
    status, _ = await post(stack, "/cap/", doc, headers={"Authorization": f"Bearer {token}"})
    assert status == 413


def test_a_cap_alert_with_two_chinese_info_blocks_makes_two_valid_events():
    from app.intake.cap import alert_events

    doc = cap(identifier="TWO_INFOS", sender=SENDER, sent=local_iso(-60),
              infos=[info(expires="2099-01-01T00:00:00+08:00"),
                     info(expires="2099-01-01T00:00:00+08:00", event="暴雨")]).encode()  # fmt: skip
    events = alert_events(doc)
    assert [e.id for e in events] == ["CAP-TWO_INFOS.1-Alert", "CAP-TWO_INFOS.2-Alert"]


async def test_a_cap_token_speaks_only_for_areas_in_its_districts(stack, state):
    token = await cap_token(stack["settings"], SENDER, districts=("440303",))  # Luohu
    status, body = await post(stack, "/cap/", alert("OTHER_DISTRICT"),  # an alert for Yantian
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 403 and "outside this token's districts" in json.loads(body)["error"]
    assert await nothing_for(stack, state, "CAP-OTHER_DISTRICT-Alert")


async def test_held_sends_of_other_districts_are_neither_shown_nor_released(stack):
    settings = stack["settings"]
    redis = make_redis(settings)
    guard = BlastGuard(redis, settings.redis_prefix, BlastPolicy())
    hold_id = await guard.hold(
        weather_event("E-HELD-YT", ["440308"]), "weather-outdoor-ads-warning", 5000, "test"
    )
    try:
        luohu = await cap_token(
            settings, scopes=("held:read", "held:release"), districts=("440303",)
        )
        headers = {"Authorization": f"Bearer {luohu}"}
        status, body = await get(stack, "/held/", headers)
        assert status == 200 and hold_id not in [h["id"] for h in json.loads(body)["held"]]
        assert (await post(stack, f"/held/{hold_id}/release/", b"", headers=headers))[0] == 404
        assert hold_id in [h["id"] for h in await guard.held()]  # still held, not released
        shenzhen = await cap_token(settings, scopes=("held:read",), districts=("440300",))
        status, body = await get(stack, "/held/", {"Authorization": f"Bearer {shenzhen}"})
        assert hold_id in [h["id"] for h in json.loads(body)["held"]]
    finally:
        await guard.take(hold_id)
        await redis.aclose()


async def test_the_deployment_wide_counters_need_a_token_for_every_district(stack):
    token = await cap_token(stack["settings"], scopes=("stats:read",), districts=("*",))
    assert (await get(stack, "/stats/", {"Authorization": f"Bearer {token}"}))[0] == 200
    with pytest.raises(ConfigError, match="needs --district"):
        await cap_token(stack["settings"], scopes=("stats:read",), districts=("440308",))


async def test_the_counters_refuse_another_scope_and_a_token_narrowed_after_it_was_made(stack):
    wrong = await cap_token(stack["settings"], scopes=("held:read",), districts=("*",))
    assert (await get(stack, "/stats/", {"Authorization": f"Bearer {wrong}"}))[0] == 403
    # a token whose districts were narrowed in Redis (by hand, or an older release) no longer
    # sees the deployment-wide counters: the page checks districts itself, not only at issue
    token = await cap_token(stack["settings"], scopes=("stats:read",), districts=("*",))
    from app.access.tokens import token_hash

    redis = make_redis(stack["settings"])
    try:
        key = f"{stack['settings'].redis_prefix}token:{token_hash(token)}"
        await redis.hset(key, "districts", json.dumps(["440308"]))
    finally:
        await redis.aclose()
    assert (await get(stack, "/stats/", {"Authorization": f"Bearer {token}"}))[0] == 403


async def test_health_gives_anyone_the_verdict_and_only_a_metrics_token_the_detail(stack):
    status, body = await get(stack, "/health/")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    forged = await get(stack, "/health/", {"Authorization": "Bearer lct_forged"})
    assert forged[0] == 401
    other = await cap_token(stack["settings"], scopes=("held:read",), districts=("*",))
    assert (await get(stack, "/health/", {"Authorization": f"Bearer {other}"}))[0] == 403
    token = await cap_token(stack["settings"], scopes=("metrics:read",), districts=("*",))
    status, body = await get(stack, "/health/", {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body) == {
        "status": "ok",
        "redis": "ok",
        "kafka": "ok",
        "gateways": {"email": "ok", "sms": "ok"},
    }
    assert "127.0.0.1" not in body and "sms.jsonl" not in body  # no address, no path


# Last in this module: it leaves this client throttled for a minute.
async def test_a_valid_token_cannot_be_guessed_at_speed(stack):
    for _ in range(10):
        await get(stack, "/held/", {"Authorization": f"Bearer lct_{uuid.uuid4().hex}"})
    status, _ = await get(stack, "/held/", {"Authorization": f"Bearer lct_{uuid.uuid4().hex}"})
    assert status == 429
