"""The staff story in a real browser (Playwright driving Debian's chromium): an author fixes what the
checker catches, previews, test-sends to herself and submits; an approver approves; the worker that
ran all along applies the version within 5 s; the audit log has every step. Screenshots of the main
pages are kept in var/test-artifacts/console/."""

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
from tests.helpers import graduate_event, outbox_lines, person
from tests.integration.test_console import PASSWORD
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from wiring.kafka import publish

CHROMIUM = "/usr/bin/chromium"  # Debian's; `make` installs it (Playwright cannot download here)
SHOTS = PROJECT_ROOT / "var" / "test-artifacts" / "console"
RULE = "graduate-hukou-transfer"
NEW_TEXT = "{{ recipient.name }}同学：您的接收申请已获批，请于30日内到盐田区政务服务中心办理户籍迁入（{{ data.approval_no }}）。"


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


async def test_an_author_and_an_approver_change_a_reminder_in_the_browser(console, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings = console["settings"]
    workers = Workers(settings, LOGS / f"browser-{uuid.uuid4().hex[:6]}")
    proc = workers.start()
    try:
        assert await workers.ready(proc), "the worker did not start"
        await load_profiles(settings, [person("P-BR1", mobile="13800000501")])

        # a wrong password is said on the page, and nothing else happens
        context = await browser.new_context(locale="zh-CN")
        login = await context.new_page()
        await login.goto(f"{console['url']}/login")
        await login.get_by_label("账号 Login").fill("yt-author")
        await login.get_by_label("密码 Password").fill("not the password")
        await login.get_by_role("button", name="登录 Sign in").click()
        await login.get_by_text("账号或密码错误").wait_for()
        await login.screenshot(path=SHOTS / "login-refused.png")

        author = await signed_in_page(browser, console, "yt-author")
        await author.get_by_role("link", name="毕业生").first.wait_for()
        await author.screenshot(path=SHOTS / "rules.png", full_page=True)
        await author.goto(f"{console['url']}/rules/{RULE}")
        rule = json.loads(await author.locator("#rule-json").input_value())
        misspelt = {**rule, "districts": ["440308"], "whne": "data.school == '深圳大学'"}
        await author.locator("#rule-json").fill(json.dumps(misspelt, ensure_ascii=False, indent=2))
        await author.locator("#sms-text").fill("请尽快办理户籍迁入。" * 60)
        assert "超过网关上限" in await author.locator("#sms-meter").inner_text()  # as you type
        await author.get_by_role("button", name="保存草稿 Save draft").click()
        errors = author.locator("#errors")
        await errors.wait_for()
        text = await errors.inner_text()
        assert "whne" in text
        await author.screenshot(path=SHOTS / "editor-errors.png", full_page=True)

        fixed = {**rule, "districts": ["440308"]}
        await author.locator("#rule-json").fill(json.dumps(fixed, ensure_ascii=False, indent=2))
        await author.locator("#sms-text").fill("请尽快办理户籍迁入。" * 60)
        await author.get_by_role("button", name="保存草稿 Save draft").click()
        await (
            author.locator("#errors").get_by_text("channels.sms").wait_for()
        )  # the SMS is too long
        await author.locator("#sms-text").fill(NEW_TEXT)
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
        assert [m["To"].addresses[0].addr_spec for m in console["sink"].received()] == [
            "yt-author@example.cn"
        ]
        await author.get_by_role("button", name="提交审核 Submit").click()
        await author.locator("#step-done").wait_for()

        approver = await signed_in_page(browser, console, "yt-approver")
        await approver.goto(f"{console['url']}/rules/{RULE}")
        assert (await approver.locator("#draft-status").inner_text()) == "submitted"
        before = workers.log(proc).read_text(errors="replace").count(" applied: ")
        approved_at = time.monotonic()
        await approver.get_by_role("button", name="批准 Approve").click()
        await approver.locator("#step-done").wait_for()
        await approver.screenshot(path=SHOTS / "approved.png", full_page=True)
        assert await wait_until(
            lambda: workers.log(proc).read_text(errors="replace").count(" applied: ") > before,
            timeout=5,
            every=0.1,
        ), "the running worker did not apply the approved version within 5 s"
        print(f"applied {time.monotonic() - approved_at:.1f} s after the click")

        publish(settings.kafka_servers, [validate_event(graduate_event("E-BR1", "P-BR1"))])
        assert await wait_until(
            lambda: any(ln["event_id"] == "E-BR1" for ln in outbox_lines(outbox)), 60
        )
        [sms] = [ln for ln in outbox_lines(outbox) if ln["event_id"] == "E-BR1"]
        assert sms["to"] == "+8613800000501" and "请于30日内" in sms["text"]
        assert len([ln for ln in outbox_lines(outbox) if ln["event_id"] == "E-BR1"]) == 1

        steps = [(e.who, e.action, e.outcome) for e in await console["svc"].audit.read()]
        for expected in [("yt-author", "login-failed", "refused"), ("yt-author", "login", "ok"),
                         ("yt-author", "rule-draft", "ok"), ("yt-author", "test-send", "ok"),
                         ("yt-author", "rule-submit", "ok"), ("yt-approver", "login", "ok"),
                         ("yt-approver", "rule-approve", "ok")]:  # fmt: skip
            assert expected in steps, expected
    finally:
        workers.stop_all()
