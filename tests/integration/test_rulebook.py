"""Rules as versioned data through the console: a draft checked as the workers will load it,
submitted, approved by someone else, live in a running worker within seconds without a restart,
and rolled back there. Also the refusals of the four-eyes workflow."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest_asyncio

from app.core.settings import Settings
from app.intake.events import validate_event
from bench.harness import Workers, load_profiles, wait_until
from tests.conftest import LOGS
from tests.helpers import graduate_event, outbox_lines, person
from tests.integration.test_console import PASSWORD, http, sign_in  # noqa: F401 - fixtures
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from wiring.kafka import publish

RULE = "graduate-hukou-transfer"
SMS = "graduate_hukou_transfer/zh-CN/sms.txt"
NEW_TEXT = (
    "{{ recipient.name }}同学：新版本提醒，请于30日内办理户籍迁入（{{ data.approval_no }}）。"
)


async def live_rule(session, console):
    detail = await (await session.get(f"{console['url']}/api/rules/{RULE}")).json()
    return detail["live"]["rule"], detail


async def put_draft(session, csrf, console, rule, templates):
    response = await session.put(f"{console['url']}/api/rules/{RULE}/draft", headers=csrf,
                                 json={"rule": rule, "templates": templates})  # fmt: skip
    assert response.status == 200, await response.text()
    return await response.json()


async def approve_new_text(console, text):
    """As the district does it: an author drafts and submits, an approver approves."""
    author, author_csrf = await sign_in(console, "yt-author")
    approver, approver_csrf = await sign_in(console, "yt-approver")
    try:
        rule, _ = await live_rule(author, console)
        rule = {**rule, "districts": ["440308"]}
        assert (await put_draft(author, author_csrf, console, rule, {SMS: text}))["errors"] == []
        assert (
            await author.post(f"{console['url']}/api/rules/{RULE}/submit", headers=author_csrf)
        ).status == 200
        approved = await approver.post(
            f"{console['url']}/api/rules/{RULE}/approve", headers=approver_csrf
        )
        assert approved.status == 200, await approved.text()
        return (await approved.json())["version"]
    finally:
        await author.close()
        await approver.close()


async def test_the_checker_names_a_misspelt_field_and_a_too_long_sms(console):
    author, csrf = await sign_in(console, "yt-author")
    try:
        rule, _ = await live_rule(author, console)
        misspelt = {**rule, "districts": ["440308"], "whne": "data.school == '深圳大学'"}
        errors = (await put_draft(author, csrf, console, misspelt, {SMS: "很长" * 260}))["errors"]
        fields = {e["field"] for e in errors}
        assert "whne" in fields, errors
        fixed = {**rule, "districts": ["440308"]}
        errors = (await put_draft(author, csrf, console, fixed, {SMS: "很长" * 260}))["errors"]
        assert [e["field"] for e in errors] == ["channels.sms"] and "at most 500" in errors[0][
            "message"
        ]
        refused = await author.post(f"{console['url']}/api/rules/{RULE}/submit", headers=csrf)
        assert refused.status == 422  # a draft with errors is never submitted
        odd = await author.put(f"{console['url']}/api/rules/{RULE}/draft", headers=csrf,
                               json={"rule": fixed, "templates": {"../../etc/passwd": "x"}})  # fmt: skip
        assert (await odd.json())["errors"][0]["field"].startswith("templates.")
    finally:
        await author.close()


async def test_four_eyes_no_one_approves_their_own_change_or_outside_their_districts(console):
    svc = console["svc"]
    await svc.accounts.put("yt-both", PASSWORD, ["author", "approver"], ["440308"])
    both, csrf = await sign_in(console, "yt-both")
    luohu, luohu_csrf = await sign_in(console, "lh-approver")
    author, author_csrf = await sign_in(console, "yt-author")
    try:
        rule, _ = await live_rule(both, console)
        assert (
            await put_draft(both, csrf, console, {**rule, "districts": ["440308"]}, {SMS: NEW_TEXT})
        )["errors"] == []
        assert (
            await both.post(f"{console['url']}/api/rules/{RULE}/submit", headers=csrf)
        ).status == 200
        own = await both.post(f"{console['url']}/api/rules/{RULE}/approve", headers=csrf)
        assert own.status == 403 and "you made" in (await own.json())["error"]
        assert (
            await luohu.post(f"{console['url']}/api/rules/{RULE}/approve", headers=luohu_csrf)
        ).status == 403
        assert (
            await author.post(f"{console['url']}/api/rules/{RULE}/approve", headers=author_csrf)
        ).status == 403
        assert (
            await both.post(f"{console['url']}/api/rules/{RULE}/approve")
        ).status == 403  # no CSRF
        _, detail = await live_rule(both, console)
        assert detail["draft"]["status"] == "submitted" and detail["history"] == []
        rejected = await luohu.post(f"{console['url']}/api/rules/{RULE}/reject", headers=luohu_csrf,
                                    json={"reason": "x"})  # fmt: skip
        assert rejected.status == 403
        entries = [e for e in await svc.audit.read() if e.action == "rule-approve"]
        assert any(e.who == "yt-both" and e.outcome == "refused" for e in entries)
    finally:
        for session in (both, luohu, author):
            await session.close()


@pytest_asyncio.fixture
async def worker(console):
    settings: Settings = console["settings"]
    workers = Workers(settings, LOGS / f"rulebook-{uuid.uuid4().hex[:6]}")
    proc = workers.start()
    try:
        assert await workers.ready(proc), "the worker did not start"
        yield {"workers": workers, "proc": proc, "log": workers.log(proc)}
    finally:
        workers.stop_all()


async def test_a_running_worker_applies_an_approved_version_and_a_rollback_within_5_s(
    console, worker
):
    settings = console["settings"]
    await load_profiles(
        settings, [person("P-RB1", mobile="13800000201"), person("P-RB2", mobile="13800000202")]
    )
    outbox = Path(settings.sms_url.removeprefix("file://"))

    def applied() -> int:
        return worker["log"].read_text(errors="replace").count(" applied: ")

    async def sms_of(event_id: str, subject: str) -> str:
        publish(settings.kafka_servers, [validate_event(graduate_event(event_id, subject))])
        assert await wait_until(
            lambda: any(ln["event_id"] == event_id for ln in outbox_lines(outbox)), timeout=60
        )
        [line] = [ln for ln in outbox_lines(outbox) if ln["event_id"] == event_id]
        return line["text"]

    before = applied()
    started = time.monotonic()
    version = await approve_new_text(console, NEW_TEXT)
    assert await wait_until(lambda: applied() > before, timeout=5, every=0.1), (
        "not applied within 5 s"
    )
    print(
        f"version {version} applied by the running worker {time.monotonic() - started:.1f} s after approval"
    )
    assert "新版本提醒" in await sms_of("E-RB1", "P-RB1")

    approver, csrf = await sign_in(console, "yt-approver")
    try:
        back = await approver.post(
            f"{console['url']}/api/rules/{RULE}/rollback", headers=csrf, json={"version": 1}
        )
        assert back.status == 200, await back.text()
        assert (await back.json())["version"] == version + 1
        history = (await (await approver.get(f"{console['url']}/api/rules/{RULE}")).json())[
            "history"
        ]
        assert [(h["version"], h["note"]) for h in history] == [
            (version, "approved"),
            (version + 1, "rollback to version 1"),
        ]
    finally:
        await approver.close()
    assert await wait_until(lambda: applied() > before + 1, timeout=5, every=0.1), (
        "rollback not applied within 5 s"
    )
    text = await sms_of("E-RB2", "P-RB2")
    assert "新版本提醒" not in text and "下一步请办理户籍迁入" in text


async def test_preview_says_who_gets_what_and_why_each_left_out_is_left_out(console):
    from app.delivery.preferences import Preferences
    from tests.helpers import TEST_SECRET

    settings = console["settings"]
    await load_profiles(
        settings, [person("P-PV1", mobile="13800000301"), person("P-PV2", mobile="13800000302")]
    )
    prefs = Preferences(console["svc"].runtime.redis, settings.redis_prefix, TEST_SECRET)
    await prefs.opt_out("+8613800000302", "reminder", "sms")
    author, csrf = await sign_in(console, "yt-author")
    try:
        out = {}
        for pid in ("P-PV1", "P-PV2", "P-NOBODY"):
            response = await author.post(f"{console['url']}/api/rules/{RULE}/preview",
                                         json={"event": graduate_event(f"E-{pid}", pid)})  # fmt: skip
            assert response.status == 200, await response.text()
            out[pid] = await response.json()
        [sms] = out["P-PV1"]["sample"]
        assert sms["to"] == "+86138****0301" and "户籍迁入" in sms["content"]["text"]
        assert sms["content"]["segments"] >= 1 and out["P-PV1"]["left_out"] == []
        assert out["P-PV2"]["recipients"] == 0
        assert out["P-PV2"]["left_out"][0]["why"] == "opted out of reminder by sms"
        assert "no profile for subject P-NOBODY" in out["P-NOBODY"]["left_out"][0]["why"]
        bad = await author.post(
            f"{console['url']}/api/rules/{RULE}/preview", json={"event": {"id": 1}}
        )
        assert bad.status == 400
        # nothing was sent or recorded by a preview
        assert not Path(settings.sms_url.removeprefix("file://")).exists()
    finally:
        await author.close()


async def test_a_test_send_reaches_only_the_caller_and_is_audited(console):
    settings = console["settings"]
    await load_profiles(
        settings, [person("P-TS1", mobile="13800000401", email="resident@example.cn")]
    )
    author, csrf = await sign_in(console, "yt-author")
    try:
        shipped = await author.post(f"{console['url']}/api/rules/{RULE}/test-send", headers=csrf)
        assert shipped.status == 403  # the shipped rule is the whole deployment's, not Yantian's
        rule, _ = await live_rule(author, console)
        draft = await put_draft(
            author, csrf, console, {**rule, "districts": ["440308"]}, {SMS: NEW_TEXT}
        )
        assert draft["errors"] == []
        assert (
            await author.post(f"{console['url']}/api/rules/{RULE}/test-send")
        ).status == 403  # CSRF
        response = await author.post(f"{console['url']}/api/rules/{RULE}/test-send", headers=csrf,
                                     json={"event": graduate_event("E-TS1", "P-TS1")})  # fmt: skip
        assert response.status == 200, await response.text()
        sent = sorted((s["channel"], s["template"]) for s in (await response.json())["sent"])
        # the first message on both channels, and the follow-up reminder of the journey
        assert sent == [("email", "graduate_hukou_transfer"), ("sms", "graduate_hukou_reminder"),
                        ("sms", "graduate_hukou_transfer")]  # fmt: skip
        lines = outbox_lines(Path(settings.sms_url.removeprefix("file://")))
        assert [ln["to"] for ln in lines] == ["+8613800000001"] * 2
        assert all(ln["text"].startswith("【测试】") for ln in lines)
        assert "提醒您" in lines[1]["text"]
        mails = console["sink"].received()
        assert [m["To"].addresses[0].addr_spec for m in mails] == ["yt-author@example.cn"]
        assert mails[0]["Subject"].startswith("[测试]")
        entries = [e for e in await console["svc"].audit.read() if e.action == "test-send"]
        assert [(e.who, sorted(e.details["channels"].split(","))) for e in entries] == [
            ("yt-author", ["email", "sms", "sms"])
        ]
    finally:
        await author.close()


async def test_an_audience_term_no_profile_has_is_caught_with_a_did_you_mean(console):
    from tests.helpers import contact, enterprise

    await load_profiles(console["settings"], [enterprise("E-DYM", permits=("outdoor_advertising",),
                                                         contacts=[contact("safety_officer", "13900000601"),
                                                                   contact("legal_representative", "13900000604")])])  # fmt: skip
    author, csrf = await sign_in(console, "yt-author")
    try:
        url = f"{console['url']}/api/rules/weather-outdoor-ads-warning"
        rule = (await (await author.get(url)).json())["live"]["rule"]
        rule = {**rule, "districts": ["440308"]}
        rule["recipients"] = {**rule["recipients"], "audience": {**rule["recipients"]["audience"],
                                                                 "permit": "outdoor_advertsing"}}  # fmt: skip
        response = await author.put(
            f"{url}/draft", headers=csrf, json={"rule": rule, "templates": {}}
        )
        [problem] = (await response.json())["errors"]
        assert problem["field"] == "recipients.audience.permit"
        assert (
            "reach nobody" in problem["message"]
            and "did you mean outdoor_advertising?" in problem["message"]
        )
        rule["recipients"]["audience"]["permit"] = "outdoor_advertising"
        response = await author.put(
            f"{url}/draft", headers=csrf, json={"rule": rule, "templates": {}}
        )
        assert (await response.json())["errors"] == []
    finally:
        await author.close()


async def test_a_contact_role_or_district_no_profile_has_is_caught_with_a_did_you_mean(console):
    from tests.helpers import contact, enterprise

    await load_profiles(console["settings"], [enterprise("E-ROLE", permits=("outdoor_advertising",),
                                                         contacts=[contact("safety_officer", "13900000602"),
                                                                   contact("legal_representative", "13900000603")])])  # fmt: skip
    author, csrf = await sign_in(console, "yt-author")
    try:
        url = f"{console['url']}/api/rules/weather-outdoor-ads-warning"
        rule = (await (await author.get(url)).json())["live"]["rule"]
        rule = {**rule, "districts": ["440308"]}
        rule["recipients"] = {**rule["recipients"], "contacts": ["saftey_officer"],
                              "fallback_contacts": ["legal_represntative"]}  # fmt: skip
        response = await author.put(
            f"{url}/draft", headers=csrf, json={"rule": rule, "templates": {}}
        )
        errors = (await response.json())["errors"]
        assert [e["field"] for e in errors] == [
            "recipients.contacts",
            "recipients.fallback_contacts",
        ]
        assert "did you mean safety_officer?" in errors[0]["message"]
        assert "did you mean legal_representative?" in errors[1]["message"]

        rule["recipients"] = {**rule["recipients"], "contacts": ["safety_officer"],
                              "fallback_contacts": ["legal_representative"]}  # fmt: skip
        admin, admin_csrf = await sign_in(console, "admin")  # "*" covers any district it names
        try:
            elsewhere = {**rule, "districts": ["440309"]}
            response = await admin.put(f"{url}/draft", headers=admin_csrf,
                                       json={"rule": elsewhere, "templates": {}})  # fmt: skip
            assert response.status == 403  # admin is not an author
        finally:
            await admin.close()
        await console["svc"].accounts.put("city-author", PASSWORD, ["author"], ["440300"])
        city, city_csrf = await sign_in(console, "city-author")
        try:
            response = await city.put(f"{url}/draft", headers=city_csrf,
                                      json={"rule": {**rule, "districts": ["440309"]}, "templates": {}})  # fmt: skip
            [problem] = (await response.json())["errors"]
            assert (
                problem["field"] == "districts"
                and "no profile is in district 440309" in problem["message"]
            )
            assert "440308" in problem["message"]
            response = await city.put(f"{url}/draft", headers=city_csrf,
                                      json={"rule": rule, "templates": {}})  # fmt: skip
            assert (await response.json())["errors"] == []
        finally:
            await city.close()
    finally:
        await author.close()


async def test_the_sms_meter_counts_the_text_as_sent_not_the_template(console):
    author, csrf = await sign_in(console, "yt-author")
    try:
        url = f"{console['url']}/api/render-sms"
        ask = {"event_type": "graduate.reception.approved",
               "text": "{{ recipient.name }}同学：请办理户籍迁入（{{ data.approval_no }}）。"}  # fmt: skip
        body = await (await author.post(url, headers=csrf, json=ask)).json()
        signature = console["settings"].sms_signature
        assert body["text"] == f"{signature}李明同学：请办理户籍迁入（SZJS2026070100123）。"
        assert (body["chars"], body["encoding"], body["segments"]) == (len(body["text"]), "UCS2", 1)
        long = await (
            await author.post(
                url, headers=csrf, json={**ask, "text": "{{ data.school * 1 }}" + "长" * 499}
            )
        ).json()
        assert long["over_limit"] is True and long["chars"] > 500
        wrong = await (
            await author.post(url, headers=csrf, json={**ask, "text": "{{ data.shcool }}"})
        ).json()
        assert "shcool" in wrong["error"]
        endless = await (await author.post(url, headers=csrf,
                                           json={**ask, "text": "{% for i in range(10**9) %}x{% endfor %}"})).json()  # fmt: skip
        assert "error" in endless  # bounded: refused, not run
        unknown = await author.post(url, headers=csrf, json={**ask, "event_type": "no.such"})
        assert unknown.status == 400
    finally:
        await author.close()
