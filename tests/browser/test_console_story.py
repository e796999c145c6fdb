"""The staff story in a real browser (Playwright driving Debian's chromium): an author adds a new
lifecycle item ("retirement approved → pension and medical insurance next steps") on a new event
type, which an admin approves; she fixes what the checker catches (a misspelt field, an SMS over the
gateway's limit), previews, test-sends to herself and submits; an approver approves; the worker that
ran all along applies the new type and rule within 5 s, and an event of the new type reaches exactly
the intended recipients; the audit log has every step. Screenshots of the main pages are kept in
var/test-artifacts/console/."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest_asyncio
from playwright.async_api import async_playwright

from app.core.settings import PROJECT_ROOT
from app.intake.events import validate_event
from bench.harness import Workers, load_profiles, wait_until
from tests.conftest import LOGS
from tests.helpers import (
    RETIREMENT,
    outbox_lines,
    person,
    retirement_event,
    retirement_type,
    weather_event,
)
from tests.integration.test_console import PASSWORD
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from wiring.kafka import publish

CHROMIUM = "/usr/bin/chromium"  # Debian's; `make` installs it (Playwright cannot download here)
SHOTS = PROJECT_ROOT / "var" / "test-artifacts" / "console"
RULE = "retirement-next-steps"
SMS_TEXT = "{{ recipient.name }}您好：您的退休申请已审批通过（{{ data.approval_no }}），请于退休当月到盐田区社保服务窗口申领养老金（"
CONDITION = 'data.pension_scheme == "城镇职工养老保险"'


@pytest_asyncio.fixture
async def browser():
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-dev-shm-usage"])  # fmt: skip
        try:
            yield chromium
        finally:
            await chromium.close()


async def signed_in_page(browser, console, login):
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{console['url']}/")
    await page.wait_for_url("**/login")
    await page.get_by_label("账号 Login").fill(login)
    await page.get_by_label("密码 Password").fill(PASSWORD)
    await page.get_by_role("button", name="登录 Sign in").click()
    await page.wait_for_url("**/rules")
    return page


async def test_an_author_adds_a_lifecycle_item_on_a_new_event_type_and_an_approver_approves_it(
    console, browser
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings = console["settings"]
    workers = Workers(settings, LOGS / f"browser-{uuid.uuid4().hex[:6]}")
    proc = workers.start()
    try:
        assert await workers.ready(proc), "the worker did not start"
        await load_profiles(settings, [
            person("P-BR1", mobile="13800000501"),  # in the workers' scheme: told
            person("P-BR2", mobile="13800000502"),  # in the residents' scheme: not this text
            person("P-BR3", mobile="13800000503", district="440303"),  # not the event's subject
        ])  # fmt: skip
        log = workers.log(proc)

        # a wrong password is said on the page, and nothing else happens
        context = await browser.new_context(locale="zh-CN")
        login = await context.new_page()
        await login.goto(f"{console['url']}/login")
        await login.get_by_label("账号 Login").fill("yt-author")
        await login.get_by_label("密码 Password").fill("not the password")
        await login.get_by_role("button", name="登录 Sign in").click()
        await login.get_by_text("账号或密码错误").wait_for()
        await login.screenshot(path=SHOTS / "login-refused.png")

        # the author proposes the new event type: a schema of its data and an example
        author = await signed_in_page(browser, console, "yt-author")
        await author.get_by_role("link", name="毕业生").first.wait_for()
        await author.get_by_role("link", name="事件类型 Event types").click()
        await author.wait_for_url("**/event-types")
        new_type = retirement_type()
        await author.get_by_label("名称 Name").fill(RETIREMENT)
        await author.get_by_label("事件关于").select_option("person")
        await author.get_by_label("说明 Description").fill(new_type["description"])
        await author.locator("#type-data").fill(
            json.dumps(new_type["data"], ensure_ascii=False, indent=2)
        )
        example = {**new_type["example"], "data": {"approval_no": "SZTX-1"}}  # misses two fields
        await author.locator("#type-example").fill(
            json.dumps(example, ensure_ascii=False, indent=2)
        )
        await author.get_by_role("button", name="提交审批 Save for approval").click()
        await author.locator("#type-errors").get_by_text("required property").wait_for()
        await author.locator("#type-example").fill(
            json.dumps(new_type["example"], ensure_ascii=False, indent=2)
        )
        await author.get_by_role("button", name="提交审批 Save for approval").click()
        await author.locator("#type-saved").wait_for()

        # an admin (not the author) approves it; the running worker installs it
        admin = await signed_in_page(browser, console, "admin")
        await admin.goto(f"{console['url']}/event-types")
        await admin.get_by_role("button", name=f"批准 Approve {RETIREMENT}").click()
        await admin.locator("#type-step-done").wait_for()
        await admin.reload()
        await admin.screenshot(path=SHOTS / "event-types.png", full_page=True)

        # the author creates the item; the checker catches a misspelt field and a too-long SMS
        await author.goto(f"{console['url']}/rules")
        await author.get_by_label("新建提醒事项").fill(RULE)
        await author.get_by_role("button", name="新建 Create").click()
        await author.wait_for_url(f"**/rules/{RULE}")
        await author.get_by_label("事项名称 Name").fill("退休审批通过 → 养老金与医保下一步")
        await author.get_by_label("触发事件 Event type").select_option(RETIREMENT)
        await author.get_by_role("button", name="data.pension_scheme").wait_for()  # the picker
        await author.get_by_label("适用区域 Districts").fill("440308")
        await author.get_by_label("条件 Condition").fill(
            CONDITION.replace("pension_scheme", "pension_shceme")
        )
        sms = author.locator("#sms-text")
        await sms.fill("请尽快申领养老金并办理医保关系接续。" * 30)
        assert "超过网关上限" in await author.locator("#sms-meter").inner_text()  # as you type
        await author.locator("#sms-rendered").get_by_text("超过网关上限").wait_for()
        await author.get_by_role("button", name="保存草稿 Save draft").click()
        errors = author.locator("#errors")
        await errors.wait_for()
        text = await errors.inner_text()
        assert "data.pension_shceme" in text and "did you mean data.pension_scheme" in text
        assert "channels.sms" in text  # over 500 characters
        await author.screenshot(path=SHOTS / "editor-errors.png", full_page=True)

        await author.get_by_label("条件 Condition").fill(CONDITION)
        await sms.fill(SMS_TEXT)
        await sms.press("End")
        await author.get_by_role(
            "button", name="data.pension_scheme"
        ).click()  # inserted at the cursor
        await sms.press("End")
        await sms.type("）及医保关系接续。")
        assert "{{ data.pension_scheme }}" in await sms.input_value()
        rendered = author.locator("#sms-rendered")  # the text as it will be sent, as one types
        await rendered.get_by_text("城镇职工养老保险）及医保关系接续").wait_for()
        assert "条短信" in await rendered.inner_text() and "{{" not in await rendered.inner_text()
        assert (
            "1 条短信" in await author.locator("#sms-meter").inner_text()
            or "2 条短信" in await author.locator("#sms-meter").inner_text()
        )
        await author.get_by_role("button", name="保存草稿 Save draft").click()
        await author.locator("#saved").wait_for()
        await author.get_by_role("button", name="预览 Preview").click()
        await author.locator("#preview-count").wait_for()
        await author.screenshot(path=SHOTS / "editor-preview.png", full_page=True)
        await author.get_by_role("button", name="发给我测试 Test-send to me").click()
        await author.locator("#test-sent").wait_for()
        outbox = Path(settings.sms_url.removeprefix("file://"))
        tests_sent = [ln for ln in outbox_lines(outbox) if ln["text"].startswith("【测试】")]
        assert [ln["to"] for ln in tests_sent] == ["+8613800000001"]  # only her own phone
        assert "城镇职工养老保险" in tests_sent[0]["text"]
        assert console["sink"].received() == []  # no e-mail channel on this item
        await author.get_by_role("button", name="提交审核 Submit").click()
        await author.locator("#step-done").wait_for()

        approver = await signed_in_page(browser, console, "yt-approver")
        await approver.goto(f"{console['url']}/rules/{RULE}")
        assert (await approver.locator("#draft-status").inner_text()) == "submitted"
        before = log.read_text(errors="replace").count(" applied: ")
        approved_at = time.monotonic()
        await approver.get_by_role("button", name="批准 Approve").click()
        await approver.locator("#step-done").wait_for()
        await approver.reload()
        await approver.screenshot(path=SHOTS / "approved.png", full_page=True)
        assert await wait_until(
            lambda: log.read_text(errors="replace").count(" applied: ") > before,
            timeout=5,
            every=0.1,
        ), "the running worker did not apply the approved version within 5 s"
        print(f"applied {time.monotonic() - approved_at:.1f} s after the click")

        publish(settings.kafka_servers, [
            validate_event(retirement_event("E-BR1", "P-BR1")),
            validate_event(retirement_event("E-BR2", "P-BR2", pension="城乡居民养老保险")),
        ])  # fmt: skip
        assert await wait_until(
            lambda: any(ln["event_id"] == "E-BR1" for ln in outbox_lines(outbox)), 60
        )
        state = console["svc"].runtime.state

        async def planned(event_id):
            return [s for s in await state.steps(event_id) if s["step"] == "planned"]

        assert await wait_until(lambda: planned("E-BR2"), 30)
        [step] = await planned("E-BR2")
        assert (
            step["skipped"] == [f"{RULE}: condition false for P-BR2"]
            and step["notifications"] == []
        )
        real = [ln for ln in outbox_lines(outbox) if ln["event_id"] in ("E-BR1", "E-BR2")]
        assert [ln["to"] for ln in real] == ["+8613800000501"]  # exactly the intended one
        assert "城镇职工养老保险" in real[0]["text"] and not real[0]["text"].startswith("【测试】")

        await author.goto(f"{console['url']}/rules")
        await author.get_by_role("link", name="退休审批通过").wait_for()
        await author.screenshot(path=SHOTS / "rules.png", full_page=True)

        # a held warning: the approver sees its audience and a masked sample, and releases it
        held_id = await console["svc"].runtime.guard.hold(
            weather_event("E-BR-HOLD", ["440308"]), "weather-outdoor-ads-warning", 4200,
            "4200 messages is 12× the median of 350", rule_version=2,
            sample=[{"channel": "sms", "to": "+86139****0098", "text": "【盐田区】大风黄色预警：请立即加固户外广告设施。"}])  # fmt: skip
        await approver.get_by_role("link", name="暂停的发送 Held").click()
        await approver.wait_for_url("**/held")
        assert "4200" in await approver.locator(".audience").inner_text()
        await approver.screenshot(path=SHOTS / "held.png", full_page=True)
        await approver.get_by_role("button", name="放行 Release").click()
        await approver.locator("#held-done").wait_for()
        assert held_id not in [h["id"] for h in await console["svc"].runtime.guard.held()]

        steps = [(e.who, e.action, e.outcome) for e in await console["svc"].audit.read()]
        for expected in [("yt-author", "login-failed", "refused"), ("yt-author", "login", "ok"),
                         ("yt-author", "event-type-draft", "ok"), ("admin", "event-type-approve", "ok"),
                         ("yt-author", "rule-draft", "ok"), ("yt-author", "test-send", "ok"),
                         ("yt-author", "rule-submit", "ok"), ("yt-approver", "login", "ok"),
                         ("yt-approver", "rule-approve", "ok"), ("yt-approver", "held-release", "ok")]:  # fmt: skip
            assert expected in steps, expected
        reloads = [o for w, a, o in steps if a == "rules-reload" and w.startswith("worker:")]
        assert reloads and set(reloads) == {"ok"}  # the running worker's reloads, recorded
    finally:
        workers.stop_all()
