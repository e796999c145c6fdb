"""The hotline's message search, against a running worker: a person's notifications are found by
mobile number (as the caller says it), e-mail or profile id, through keyed hashes only, and a
suppressed one is explained from what was recorded; operators see only their districts."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis.asyncio as aioredis

from app.core.codec import text
from app.intake.events import validate_event
from bench.harness import Workers, load_profiles, wait_until
from tests.conftest import LOGS
from tests.helpers import contact, enterprise, graduate_event, outbox_lines, person, weather_event
from tests.integration.test_console import PASSWORD, sign_in
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from wiring.kafka import publish


async def search(session, console, to):
    response = await session.get(f"{console['url']}/api/messages", params={"to": to})
    return response.status, await response.json()


async def test_the_hotline_finds_a_persons_messages_by_number_and_explains_a_suppressed_one(
    console,
):
    settings = console["settings"]
    rt = console["svc"].runtime
    workers = Workers(settings, LOGS / f"search-{uuid.uuid4().hex[:6]}")
    proc = workers.start()
    operator, _ = await sign_in(console, "sz-operator")
    await console["svc"].accounts.put("lh-operator", PASSWORD, ["operator"], ["440303"])
    luohu, _ = await sign_in(console, "lh-operator")
    author, _ = await sign_in(console, "yt-author")
    try:
        assert await workers.ready(proc), "the worker did not start"
        await load_profiles(settings, [person("P-MS1", mobile="13800000701", email="ms1@example.cn"),
                                       person("P-MS2", mobile="13800000702")])  # fmt: skip
        await rt.preferences.opt_out("+8613800000701", "reminder", "sms")  # she replied TD once
        publish(settings.kafka_servers, [validate_event(graduate_event("E-MS1", "P-MS1")),
                                         validate_event(graduate_event("E-MS2", "P-MS2"))])  # fmt: skip
        outbox = Path(settings.sms_url.removeprefix("file://"))
        assert await wait_until(
            lambda: any(ln["event_id"] == "E-MS2" for ln in outbox_lines(outbox)), 60
        )

        async def suppressed():
            status, body = await search(operator, console, "138 0000 0701")
            sms = [n for n in body.get("notifications", []) if n["channel"] == "sms"]
            return status == 200 and sms and sms[0]["status"] == "suppressed" and body

        body = (
            await wait_until(suppressed, 30)
            and (await search(operator, console, "138 0000 0701"))[1]
        )
        assert body["kind"] == "mobile"
        [sms] = [n for n in body["notifications"] if n["channel"] == "sms"]
        assert sms["why"] == "not sent: opted out of reminder by sms"
        assert (sms["rule"], sms["event"], sms["to"]) == (
            "graduate-hukou-transfer",
            "E-MS1",
            "+86138****0701",
        )
        assert [s["step"] for s in sms["steps"]][-1] == "suppressed"

        by_profile = (await search(operator, console, "P-MS1"))[1]
        assert by_profile["kind"] == "profile"
        assert {(n["channel"], n["status"]) for n in by_profile["notifications"]} == {
            ("sms", "suppressed"),
            ("email", "sent"),
        }
        by_mail = (await search(operator, console, "MS1@Example.CN"))[1]  # as a caller spells it
        [mail] = by_mail["notifications"]
        [handed] = [s for s in mail["steps"] if s.get("outcome") == "sent"]
        assert (mail["channel"], mail["why"]) == ("email", f"sent by email at {handed['at']}")
        [sent] = (await search(operator, console, "+86 13800000702"))[1]["notifications"]
        assert sent["status"] == "sent" and sent["event"] == "E-MS2"

        status, elsewhere = await search(luohu, console, "13800000701")
        assert (
            status == 200
            and elsewhere["notifications"] == []
            and elsewhere["outside_your_districts"] == 1
        )
        assert (await search(author, console, "13800000701"))[0] == 403
        assert (await search(operator, console, ""))[0] == 400

        redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            keys = [text(k) async for k in redis.scan_iter(f"{settings.redis_prefix}*", count=1000)]
        finally:
            await redis.aclose()
        assert any(":who:" in k for k in keys)
        assert not any(
            "13800000701" in k or "ms1@" in k or ("P-MS1" in k and ":who:" in k) for k in keys
        )
        searches = [e for e in await console["svc"].audit.read() if e.action == "message-search"]
        assert searches and all("0701" not in str(e.details) for e in searches)
    finally:
        for session in (operator, luohu, author):
            await session.close()
        workers.stop_all()


async def test_the_hotline_is_told_why_a_warning_did_not_reach_an_enterprise(console):
    """ "Why didn't my company get the gale warning?": the broadcasts of the window, each with the
    reason it missed the profile, the same in the API and on the page; a profile moved into the
    area afterwards is told apart from one that never was in it."""
    settings = console["settings"]
    workers = Workers(settings, LOGS / f"why-not-{uuid.uuid4().hex[:6]}")
    proc = workers.start()
    operator, _ = await sign_in(console, "sz-operator")
    luohu, _ = await sign_in(console, "lh-approver")
    ad = ("outdoor_advertising",)
    try:
        assert await workers.ready(proc), "the worker did not start"
        await load_profiles(settings, [
            enterprise("E-MW1", permits=ad, contacts=[contact("safety_officer", "13900000801")]),
            enterprise("E-MW2", district="440303", permits=ad,
                       contacts=[contact("safety_officer", "13900000802")]),
            enterprise("E-MW3", contacts=[contact("safety_officer", "13900000803")]),
        ])  # fmt: skip
        publish(settings.kafka_servers, [validate_event(weather_event("E-MWX", ["440308"]))])
        outbox = Path(settings.sms_url.removeprefix("file://"))
        assert await wait_until(
            lambda: any(ln["event_id"] == "E-MWX" for ln in outbox_lines(outbox)), 60
        )
        status, body = await search(operator, console, "E-MW2")
        assert status == 200 and body["notifications"] == []
        # a gale concerns the construction sites' rule too; this one is about the signs
        [missed] = [m for m in body["not_reached"] if m["rule"] == "weather-outdoor-ads-warning"]
        assert (missed["event"], missed["rule"], missed["profile"]) == (
            "E-MWX", "weather-outdoor-ads-warning", "E-MW2")  # fmt: skip
        assert missed["why"] == "not in the areas 440308: the profile is in district 440303"

        [no_permit] = [m for m in (await search(operator, console, "E-MW3"))[1]["not_reached"]
                       if m["rule"] == "weather-outdoor-ads-warning"]  # fmt: skip
        assert no_permit["why"] == (
            "the rule reaches profiles with permit outdoor_advertising; it has none"
        )
        reached = (await search(operator, console, "13900000801"))[1]
        assert [n["status"] for n in reached["notifications"]] == ["sent"]
        assert reached["not_reached"] == []  # its own profile, found from the record: it was sent

        await load_profiles(settings, [enterprise("E-MW2", permits=ad, contacts=[
            contact("safety_officer", "13900000802")])])  # moved to Yantian since  # fmt: skip
        [moved] = [m for m in (await search(operator, console, "E-MW2"))[1]["not_reached"]
                   if m["rule"] == "weather-outdoor-ads-warning"]  # fmt: skip
        assert moved["why"].startswith("in the audience as the profile is now, but nothing was "
                                       "planned for it then")  # fmt: skip

        status, elsewhere = await search(luohu, console, "E-MW3")  # a Yantian profile
        assert status == 200 and elsewhere["not_reached"] == []
        assert elsewhere["profiles_outside_your_districts"] == 1

        page = await operator.get(f"{console['url']}/messages", params={"to": "E-MW3"})
        html = await page.text()
        assert page.status == 200 and "E-MWX" in html
        assert "permit outdoor_advertising; it has none" in html
        refused = await operator.get(f"{console['url']}/messages", params={"to": " "})
        assert refused.status == 200 and "messages-invalid" not in await refused.text()
        assert (await (await operator.get(f"{console['url']}/messages",
                                          params={"to": "x" * 400})).text()).count(
            "messages-invalid") == 1  # fmt: skip
        audits = [e for e in await console["svc"].audit.read() if e.action == "message-search"]
        assert len(audits) >= 6 and all("0801" not in str(e.details) for e in audits)
    finally:
        for session in (operator, luohu):
            await session.close()
        workers.stop_all()
