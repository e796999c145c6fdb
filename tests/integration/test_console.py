"""The console's JSON API against the embedded broker and Redis: sessions, CSRF, roles, districts,
throttling, held sends and the audit log on Kafka. Every refusal the contract names is here."""

from __future__ import annotations

import dataclasses
import io
import json
from contextlib import AsyncExitStack

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from app.access.accounts import THROTTLE_FAILURES
from app.core.errors import ConfigError
from app.core.timestamps import local_iso
from app.intake.events import install_types, validate_event
from app.profiles.validate import parse_profile
from console.app import build_app, open_services
from devstack.stack import free_port
from lifecycle.cli import main
from tests.helpers import (
    contact,
    enterprise,
    graduate_event,
    person,
    read_topic,
    weather_event,
)

PASSWORD = "correct horse battery staple"


@pytest_asyncio.fixture
async def console(settings, broker, smtp_sink):
    settings = dataclasses.replace(
        settings, kafka_url=broker.url, fanout_chunk=50, smtp_url=smtp_sink.url
    )
    async with AsyncExitStack() as stack:
        svc = await open_services(settings, stack)
        runner = web.AppRunner(build_app(svc))
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        for login, roles, districts in [
            ("yt-author", ["author"], ["440308"]),  # its own mobile below, and an e-mail
            ("yt-approver", ["approver"], ["440308"]),
            ("lh-approver", ["approver"], ["440303"]),
            ("sz-operator", ["operator"], ["440300"]),
            ("admin", ["admin"], ["*"]),
        ]:
            await svc.accounts.put(login, PASSWORD, roles, districts, mobile="+8613800000001",
                                   email=f"{login}@example.cn")  # fmt: skip
        stack.callback(install_types, {})  # the types this prefix added are not the next test's
        yield {
            "url": f"http://127.0.0.1:{port}",
            "svc": svc,
            "settings": settings,
            "sink": smtp_sink,
        }


@pytest_asyncio.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(console, login, password=PASSWORD):
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    response = await session.post(
        f"{console['url']}/api/login", json={"login": login, "password": password}
    )
    assert response.status == 200, await response.text()
    csrf = (await response.json())["csrf_token"]
    return session, {"X-CSRF-Token": csrf}


async def hold(console, event_id, areas, rule_version=None):
    svc = console["svc"]
    await svc.runtime.profiles.upsert(parse_profile(enterprise(
        f"E-{event_id}", district=areas[0], permits=("outdoor_advertising",),
        contacts=[contact("safety_officer", "13900000099")])))  # fmt: skip
    return await svc.runtime.guard.hold(weather_event(event_id, areas), "weather-outdoor-ads-warning",
                                        9999, "test: held", rule_version=rule_version)  # fmt: skip


async def test_login_sets_a_strict_http_only_session_and_logout_ends_it(console, http):
    response = await http.post(
        f"{console['url']}/api/login", json={"login": "yt-author", "password": PASSWORD}
    )
    assert response.status == 200
    body = await response.json()
    assert (
        body["login"] == "yt-author"
        and body["roles"] == ["author"]
        and len(body["csrf_token"]) >= 32
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert response.headers["Cache-Control"] == "no-store"
    assert (await http.get(f"{console['url']}/api/me")).status == 200
    assert (await http.post(f"{console['url']}/api/logout")).status == 403  # no CSRF token
    out = await http.post(
        f"{console['url']}/api/logout", headers={"X-CSRF-Token": body["csrf_token"]}
    )
    assert out.status == 200
    assert (await http.get(f"{console['url']}/api/me")).status == 401


RULE_PATH = "/api/rules/graduate-hukou-transfer"
EVERY_GUARDED_CALL = [
    ("GET", "/api/me"),
    ("GET", "/api/rules"),
    ("GET", "/api/held"),
    ("GET", "/api/audit"),
    ("POST", "/api/logout"),
    ("POST", "/api/held/X~r/release"),
    ("POST", "/api/held/X~r/reject"),
    ("GET", RULE_PATH),
    ("PUT", f"{RULE_PATH}/draft"),
    ("POST", f"{RULE_PATH}/submit"),
    ("POST", f"{RULE_PATH}/approve"),
    ("POST", f"{RULE_PATH}/reject"),
    ("POST", f"{RULE_PATH}/rollback"),
    ("POST", f"{RULE_PATH}/preview"),
    ("POST", f"{RULE_PATH}/test-send"),
    ("POST", f"{RULE_PATH}/backtest"),
    ("GET", f"{RULE_PATH}/outcomes"),
    ("GET", "/api/event-types"),
    ("POST", "/api/render-sms"),
    ("GET", "/api/policies"),
    ("GET", "/api/policies/yt-startup-rent-subsidy"),
    ("PUT", "/api/policies/yt-startup-rent-subsidy/draft"),
    ("POST", "/api/policies/yt-startup-rent-subsidy/approve"),
    ("POST", "/api/policies/yt-startup-rent-subsidy/reject"),
    ("POST", "/api/policies/yt-startup-rent-subsidy/preview"),
    ("GET", "/api/enterprises/E-1/policies"),
    ("GET", "/api/event-types/retirement.approved"),
    ("PUT", "/api/event-types/retirement.approved/draft"),
    ("POST", "/api/event-types/retirement.approved/approve"),
    ("POST", "/api/event-types/retirement.approved/reject"),
]


@pytest.mark.parametrize(("method", "path"), EVERY_GUARDED_CALL)
async def test_without_a_session_every_call_is_401(console, http, method, path):
    response = await http.request(method, console["url"] + path, json={})
    assert response.status == 401
    forged = await http.request(method, console["url"] + path, json={},
                                cookies={"lc_session": "forged-" + "x" * 40})  # fmt: skip
    assert forged.status == 401


async def test_the_pages_send_a_caller_without_a_session_to_sign_in(console, http):
    for path in (
        "/",
        "/rules",
        "/rules/graduate-hukou-transfer",
        "/held",
        "/event-types",
        "/dlq",
        "/dashboard",
        "/policies",
        "/policies/yt-startup-rent-subsidy",
    ):
        response = await http.get(console["url"] + path, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"] == "/login", path


# (account, method, path): a call its roles do not allow, whatever its districts
WRONG_ROLE = [
    ("sz-operator", "PUT", f"{RULE_PATH}/draft"),
    ("sz-operator", "POST", f"{RULE_PATH}/submit"),
    ("sz-operator", "POST", f"{RULE_PATH}/approve"),
    ("sz-operator", "POST", f"{RULE_PATH}/test-send"),
    ("yt-author", "POST", f"{RULE_PATH}/approve"),
    ("yt-author", "POST", f"{RULE_PATH}/reject"),
    ("yt-author", "POST", f"{RULE_PATH}/rollback"),
    ("yt-author", "GET", "/api/audit"),
    ("yt-approver", "PUT", f"{RULE_PATH}/draft"),
    ("admin", "POST", f"{RULE_PATH}/preview"),
    ("admin", "POST", f"{RULE_PATH}/backtest"),
    ("admin", "GET", "/api/held"),
    ("sz-operator", "PUT", "/api/event-types/retirement.approved/draft"),
    ("admin", "POST", "/api/render-sms"),
    ("yt-approver", "GET", "/api/dlq"),
    ("yt-author", "GET", "/api/dashboard"),
    ("yt-author", "GET", "/api/messages?to=13800000001"),
    ("yt-author", "POST", "/api/dlq/replay"),
    ("admin", "POST", "/api/dlq/discard"),
    ("yt-approver", "PUT", "/api/event-types/retirement.approved/draft"),
    ("yt-author", "POST", "/api/event-types/retirement.approved/approve"),
    ("yt-approver", "POST", "/api/event-types/retirement.approved/approve"),
    ("yt-author", "POST", "/api/event-types/retirement.approved/reject"),
    ("yt-approver", "PUT", "/api/policies/yt-startup-rent-subsidy/draft"),
    ("yt-author", "POST", "/api/policies/yt-startup-rent-subsidy/approve"),
    ("sz-operator", "POST", "/api/policies/yt-startup-rent-subsidy/reject"),
    ("sz-operator", "POST", "/api/policies/yt-startup-rent-subsidy/preview"),
    ("admin", "GET", "/api/enterprises/E-1/policies"),
]


@pytest.mark.parametrize(("login", "method", "path"), WRONG_ROLE)
async def test_a_role_that_does_not_allow_a_call_is_403(console, login, method, path):
    session, csrf = await sign_in(console, login)
    try:
        response = await session.request(method, console["url"] + path, headers=csrf,
                                         json={"rule": {}, "reason": "x", "version": 1})  # fmt: skip
        assert response.status == 403, await response.text()
    finally:
        await session.close()


async def test_a_wrong_password_is_401_and_repeated_failures_are_throttled(console, http):
    url = f"{console['url']}/api/login"
    for _ in range(THROTTLE_FAILURES):
        assert (
            await http.post(url, json={"login": "yt-author", "password": "wrong" * 3})
        ).status == 401
    throttled = await http.post(url, json={"login": "yt-author", "password": PASSWORD})
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) > 0
    unknown = await http.post(url, json={"login": "nobody", "password": PASSWORD})
    assert unknown.status == 429  # the client is throttled too, whatever login it tries


@pytest.mark.parametrize("body", [b"{" * 5000, b"\xff\xfe not utf-8", b"[1, 2", b'"a string"'])
async def test_odd_login_bodies_are_400_never_500(console, http, body):
    response = await http.post(f"{console['url']}/api/login", data=body,
                               headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status == 400


async def test_a_login_posted_by_a_cross_site_form_is_refused(console, http):
    """A form on another site can post text/plain; a login from it would sign the victim in."""
    body = json.dumps({"login": "yt-author", "password": PASSWORD})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = await http.post(f"{console['url']}/api/login", data=body,
                                   headers={"Content-Type": content_type})  # fmt: skip
        assert response.status == 415 and "lc_session" not in response.cookies


async def test_a_huge_body_is_refused_before_it_is_read(console, http):
    response = await http.post(f"{console['url']}/api/login", data=b"x" * (1024 * 1024))
    assert response.status == 413


async def test_roles_and_districts_are_enforced_by_the_api(console):
    held_id = await hold(console, "CON-YT", ["440308"])
    author, author_csrf = await sign_in(console, "yt-author")
    luohu, luohu_csrf = await sign_in(console, "lh-approver")
    try:
        assert (await author.get(f"{console['url']}/api/held")).status == 403
        refused = await author.post(
            f"{console['url']}/api/held/{held_id}/release", headers=author_csrf
        )
        assert refused.status == 403
        assert (await (await luohu.get(f"{console['url']}/api/held")).json())["held"] == []
        outside = await luohu.post(
            f"{console['url']}/api/held/{held_id}/release", headers=luohu_csrf
        )
        assert outside.status == 403
        assert await console["svc"].runtime.guard.held()  # still held
    finally:
        await author.close()
        await luohu.close()


async def test_a_change_without_or_with_a_wrong_csrf_token_is_403(console):
    held_id = await hold(console, "CON-CSRF", ["440308"])
    approver, _ = await sign_in(console, "yt-approver")
    try:
        url = f"{console['url']}/api/held/{held_id}/release"
        assert (await approver.post(url)).status == 403
        assert (await approver.post(url, headers={"X-CSRF-Token": "guess"})).status == 403
        assert [h["id"] for h in await console["svc"].runtime.guard.held()] == [held_id]
    finally:
        await approver.close()


async def test_an_approver_releases_a_hold_in_their_district_and_the_audit_log_says_so(console):
    held_id = await hold(console, "CON-REL", ["440308"])
    approver, csrf = await sign_in(console, "yt-approver")
    try:
        listing = await (await approver.get(f"{console['url']}/api/held")).json()
        assert [h["id"] for h in listing["held"]] == [held_id]
        released = await approver.post(f"{console['url']}/api/held/{held_id}/release", headers=csrf)
        assert released.status == 200 and (await released.json())["chunks"] == 1
        assert await console["svc"].runtime.guard.held() == []
        commands = [json.loads(r.value) for r in await read_topic(console["settings"].kafka_servers[0], "fanout")
                    if r.key.startswith(b"CON-REL/")]  # fmt: skip
        assert [c["ids"] for c in commands] == [["E-CON-REL"]]
        entries = (await (await approver.get(f"{console['url']}/api/audit")).json())["entries"]
        mine = [(e["who"], e["action"]) for e in entries if e["who"] == "yt-approver"]
        assert ("yt-approver", "login") in mine and ("yt-approver", "held-release") in mine
        [release] = [
            e for e in entries if e["action"] == "held-release" and e["details"]["hold"] == held_id
        ]
        assert release["districts"] == ["440308"] and release["from"] == "127.0.0.1"
    finally:
        await approver.close()


async def test_a_rejection_needs_a_reason_and_is_recorded(console):
    held_id = await hold(console, "CON-REJ", ["440308"])
    operator, csrf = await sign_in(console, "sz-operator")  # 440300 covers Yantian
    admin, _ = await sign_in(console, "admin")
    try:
        url = f"{console['url']}/api/held/{held_id}/reject"
        assert (await operator.post(url, headers=csrf, json={})).status == 400
        response = await operator.post(
            url, headers=csrf, json={"reason": "演练，不发送 13900000099"}
        )
        assert response.status == 200
        assert await console["svc"].runtime.guard.held() == []
        entries = (await (await admin.get(f"{console['url']}/api/audit")).json())["entries"]
        [entry] = [
            e for e in entries if e["action"] == "held-reject" and e["details"]["hold"] == held_id
        ]
        assert entry["who"] == "sz-operator" and "13900000099" not in entry["details"]["reason"]
        failed = [e for e in entries if e["action"] == "login-failed"]
        assert all(e["outcome"] == "refused" for e in failed)
    finally:
        await operator.close()
        await admin.close()


async def test_whoever_made_the_change_that_caused_a_hold_cannot_release_or_reject_it(console):
    """Four eyes on held sends: an author who is also an approver changes the warning rule; a send
    that version would make is held; she may not decide on it, a colleague may."""
    svc = console["svc"]
    await svc.accounts.put("yt-both", PASSWORD, ["author", "approver"], ["440308"])
    await svc.runtime.profiles.upsert(parse_profile(enterprise(
        "E-4EYES", permits=("outdoor_advertising",),
        contacts=[contact("safety_officer", "13900000098"), contact("legal_representative", "13900000097")])))  # fmt: skip
    both, both_csrf = await sign_in(console, "yt-both")
    approver, approver_csrf = await sign_in(console, "yt-approver")
    url = console["url"]
    try:
        rule = (await (await both.get(f"{url}/api/rules/weather-outdoor-ads-warning")).json())[
            "live"
        ]["rule"]
        drafted = await both.put(f"{url}/api/rules/weather-outdoor-ads-warning/draft", headers=both_csrf,
                                 json={"rule": {**rule, "districts": ["440308"]}, "templates": {}})  # fmt: skip
        assert (await drafted.json())["errors"] == []
        assert (
            await both.post(
                f"{url}/api/rules/weather-outdoor-ads-warning/submit", headers=both_csrf
            )
        ).status == 200
        approved = await approver.post(
            f"{url}/api/rules/weather-outdoor-ads-warning/approve", headers=approver_csrf
        )
        version = (await approved.json())["version"]

        held_id = await hold(console, "CON-4EYES", ["440308"], rule_version=version)
        [listed] = (await (await approver.get(f"{url}/api/held")).json())["held"]
        assert listed["caused_by"] == ["yt-both"] and listed["rule_version"] == version
        for step, body in (("release", {}), ("reject", {"reason": "不发"})):
            own = await both.post(f"{url}/api/held/{held_id}/{step}", headers=both_csrf, json=body)
            assert own.status == 403, step
            assert "a colleague" in (await own.json())["error"]
        assert [h["id"] for h in await svc.runtime.guard.held()] == [held_id]
        page = await (await both.get(f"{url}/held")).text()
        assert "yt-both" in page and "CON-4EYES" not in page.split("<main")[0]
        released = await approver.post(f"{url}/api/held/{held_id}/release", headers=approver_csrf)
        assert released.status == 200
        refused = [
            e for e in await svc.audit.read() if e.action == "held-release" and e.who == "yt-both"
        ]
        assert [e.outcome for e in refused] == ["refused"]
    finally:
        await both.close()
        await approver.close()


async def test_a_release_that_cannot_be_published_is_held_again(console, monkeypatch):
    """Kafka refusing the chunk commands must not lose the held warning."""
    held_id = await hold(console, "CON-KAFKA", ["440308"])
    approver, csrf = await sign_in(console, "yt-approver")

    async def broker_gone(topic, records):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(console["svc"].kafka, "send", broker_gone)
    try:
        response = await approver.post(f"{console['url']}/api/held/{held_id}/release", headers=csrf)
        assert response.status == 503 and "held again" in (await response.json())["error"]
        assert [h["id"] for h in await console["svc"].runtime.guard.held()] == [held_id]
        monkeypatch.undo()
        again = await approver.post(f"{console['url']}/api/held/{held_id}/release", headers=csrf)
        assert again.status == 200 and (await again.json())["chunks"] == 1
    finally:
        await approver.close()


async def test_the_audit_log_refuses_a_time_without_a_zone(console):
    admin, _ = await sign_in(console, "admin")
    try:
        assert (
            await admin.get(f"{console['url']}/api/audit?since=2026-12-01T00:00:00")
        ).status == 400
        later = await admin.get(f"{console['url']}/api/audit?since=2999-01-01T00:00:00%2B08:00")
        assert (await later.json())["entries"] == []
    finally:
        await admin.close()


async def test_the_console_refuses_a_development_secret(settings, broker):
    settings = dataclasses.replace(settings, kafka_url=broker.url, secret="dev-secret")
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError, match="lifecycle console"):
            await open_services(settings, stack)


def test_users_add_reads_the_password_from_standard_input(settings, monkeypatch, capsys):
    for name, value in {"LIFECYCLE_REDIS_URL": settings.redis_url,
                        "LIFECYCLE_REDIS_PREFIX": settings.redis_prefix}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "wang-li", "--role", "author", "--district", "440308"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\nignored second line\n"))
    assert main(["users", "add", "wang-li", "--role", "author", "--role", "approver",
                 "--district", "440308", "--mobile", "13800138000"]) == 0  # fmt: skip
    assert "created wang-li: approver, author; districts 440308" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "wang-li", "--role", "boss", "--district", "440308"]) == 2
    assert "unknown: boss" in capsys.readouterr().err


async def test_the_operators_pages_refuse_other_roles(console):
    author, _ = await sign_in(console, "yt-author")
    operator, _ = await sign_in(console, "sz-operator")
    try:
        for path in ("/dashboard", "/dlq", "/held"):
            assert (await author.get(console["url"] + path)).status == 403, path
            assert (await operator.get(console["url"] + path)).status == 200, path
    finally:
        await author.close()
        await operator.close()


async def test_outcomes_are_reported_by_version_and_group_to_whom_the_rule_concerns(console):
    svc = console["svc"]
    planner = svc.runtime.planner
    await svc.runtime.profiles.upsert(parse_profile(person("P-OUT-1", mobile="13700000071")))
    start = validate_event(graduate_event("EV-OUT-1", "P-OUT-1"))
    await planner.record([(await planner.plan_event(start)).plan])
    done = validate_event(graduate_event("EV-OUT-2", "P-OUT-1") | {
        "type": "hukou.migration.completed", "occurred_at": local_iso(-60),
        "data": {"approval_no": "A-1"}})  # fmt: skip
    await planner.record([(await planner.plan_event(done)).plan])
    admin, _ = await sign_in(console, "admin")
    author, _ = await sign_in(console, "yt-author")  # 440308: the shipped rule is the city's (*)
    try:
        response = await admin.get(f"{console['url']}{RULE_PATH}/outcomes")
        assert response.status == 200, await response.text()
        [version] = (await response.json())["versions"]
        reminded = version["reminded"]
        assert (reminded["started"], reminded["completed"], reminded["decided"]) == (1, 1, 1)
        assert reminded["rate"] == 1.0 and 3500 < reminded["median_seconds"] < 3700  # an hour
        assert version["holdout"]["started"] == 0 and version["difference"] is None
        assert (await author.get(f"{console['url']}{RULE_PATH}/outcomes")).status == 403
        assert (await admin.get(f"{console['url']}/api/rules/no-such-rule/outcomes")).status == 404
    finally:
        await admin.close()
        await author.close()


POLICY = {"name": "盐田区测试补贴", "summary": "小微企业可申请测试补贴", "confirm": "营业执照",
          "where": "i深圳", "districts": ["440308"], "valid_from": "2026-01-01",
          "criteria": {"sizes": ["small"], "registered_capital": {"max": 500}}}  # fmt: skip


async def test_a_policy_is_drafted_by_field_approved_by_another_and_explains_a_match(console):
    url, svc = console["url"], console["svc"]
    author, author_csrf = await sign_in(console, "yt-author")
    approver, approver_csrf = await sign_in(console, "yt-approver")
    other, other_csrf = await sign_in(console, "lh-approver")
    try:
        path = f"{url}/api/policies/yt-test-subsidy"
        bad = {**POLICY, "criteria": {"sizes": ["huge"]}, "valid_until": "2025-01-01"}
        response = await author.put(f"{path}/draft", json={"policy": bad}, headers=author_csrf)
        body = await response.json()
        assert response.status == 200 and body["status"] == "draft"
        assert {e["field"] for e in body["errors"]} == {"valid_until", "criteria.sizes"}
        wordy = {**POLICY, "summary": "补" * 290, "confirm": "证" * 290}  # the SMS: over 500
        response = await author.put(f"{path}/draft", json={"policy": wordy}, headers=author_csrf)
        problems = (await response.json())["errors"]  # in each language of the message
        assert problems and all(p["field"] == "summary" for p in problems)
        assert "gateways take at most 500" in problems[0]["message"]
        elsewhere = {**POLICY, "districts": ["440303"]}
        response = await author.put(
            f"{path}/draft", json={"policy": elsewhere}, headers=author_csrf
        )
        assert response.status == 403  # not the author's district
        response = await author.put(f"{path}/draft", json={"policy": POLICY}, headers=author_csrf)
        assert (await response.json()) == {"errors": [], "status": "submitted"}
        assert (await author.post(f"{path}/approve", headers=author_csrf)).status == 403  # a role
        assert (await other.post(f"{path}/approve", headers=other_csrf)).status == 403  # district
        response = await approver.post(f"{path}/approve", headers=approver_csrf)
        assert response.status == 200 and (await response.json())["version"] == 1
        listing = (await (await author.get(f"{url}/api/policies")).json())["policies"]
        assert [p["version"] for p in listing if p["id"] == "yt-test-subsidy"] == [1]
        # which policies an enterprise of the caller's district meets, and why
        await svc.runtime.profiles.upsert(parse_profile(enterprise("E-POL", contacts=[]) | {
            "size": "small", "registered_capital": 100}))  # fmt: skip
        # what approving it would set off now: the enterprises it reaches, nothing sent
        response = await approver.post(f"{path}/preview", headers=approver_csrf)
        preview = await response.json()
        assert response.status == 200 and preview["complete"]
        assert (preview["meeting"], preview["told_already"]) == (1, 0)
        assert preview["sample"] == ["测试企业有限公司"]
        assert (await other.post(f"{path}/preview", headers=other_csrf)).status == 403
        response = await author.get(f"{url}/api/enterprises/E-POL/policies")
        found = {p["id"]: p for p in (await response.json())["policies"]}
        assert found["yt-test-subsidy"]["met"] and not found["yt-startup-rent-subsidy"]["met"]
        assert "no registration date on file (dates.registered_on)" in [
            c["says"] for c in found["yt-startup-rent-subsidy"]["criteria"]]  # fmt: skip
        assert (await other.get(f"{url}/api/enterprises/E-POL/policies")).status == 404
        page = await (await author.get(f"{url}/policies")).text()
        assert "盐田区测试补贴" in page and "sizes: small" in page
        editor = await (await approver.get(f"{url}/policies/yt-test-subsidy")).text()
        assert 'value="盐田区测试补贴"' in editor and 'value="small" checked' in editor
        entries = (await (await approver.get(f"{url}/api/audit")).json())["entries"]
        actions = [e["action"] for e in entries]
        assert {"policy-draft", "policy-approve", "policy-match"} <= set(actions)
    finally:
        for session in (author, approver, other):
            await session.close()
