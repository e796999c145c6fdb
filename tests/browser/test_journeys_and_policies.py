"""Journeys and policies in a real browser, as district staff write them: follow-ups with their
own texts and a completion event, a date-driven item, each saved from form fields (no JSON) and
read back; the outcomes table of a live item; a support policy drafted by an author, approved by
a colleague and used to explain which policies an enterprise meets."""

from __future__ import annotations

from app.core.timestamps import local_iso
from app.intake.events import validate_event
from app.profiles.validate import parse_profile
from tests.browser.test_console_story import SHOTS, signed_in_page
from tests.browser.test_console_story import browser as browser  # noqa: F401 - a fixture
from tests.helpers import enterprise, graduate_event, person
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from tests.integration.test_console import sign_in

RULE = "newborn-journey"
FIRST = "{{ recipient.name }}，恭喜{{ data.child_name }}出生！请在1个月内办理出生入户。"
REMINDER = "{{ recipient.name }}，提醒您：{{ data.child_name }}的出生入户尚未办理。"


async def test_an_author_writes_follow_ups_and_a_date_item_in_form_fields(console, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    author = await signed_in_page(browser, console, "yt-author")
    await author.goto(f"{console['url']}/rules/{RULE}")
    await author.get_by_label("事项名称 Name").fill("新生儿出生 → 入户提醒（测试）")
    await author.get_by_label("触发事件 Event type").select_option("birth.registered")
    await author.locator("#sms-text").fill(FIRST)
    await author.get_by_label("办结事件 Completion event").select_option("newborn.hukou.registered")
    await author.get_by_label("统计窗口（天）Outcome window, days").fill("45")
    await author.get_by_role("button", name="添加后续提醒 Add a follow-up").click()
    step = author.locator("li.fu-step").first
    await step.locator(".fu-amount").fill("14")
    await step.locator(".fu-unit").select_option("d")
    await step.locator(".fu-at").fill("10:00")
    await step.locator(".fu-repeat").fill("2")
    await step.locator(".fu-text").fill(REMINDER)
    await author.get_by_role("button", name="添加后续提醒 Add a follow-up").click()
    await author.locator("li.fu-step").nth(1).get_by_role("button", name="删除此步").click()
    await author.screenshot(path=SHOTS / "journey-editor.png", full_page=True)
    await author.get_by_role("button", name="保存草稿 Save draft").click()
    await author.locator("#saved").wait_for()

    api, _ = await sign_in(console, "yt-author")
    try:
        draft = (await (await api.get(f"{console['url']}/api/rules/{RULE}")).json())["draft"]
    finally:
        await api.close()
    assert draft["rule"]["follow_up"] == {
        "steps": [{"after": "14d", "repeat": 2, "at": "10:00",
                   "channels": {"sms": "newborn_journey_step1"}}],
        "stop_on": "newborn.hukou.registered", "window": "45d"}  # fmt: skip
    assert draft["templates"]["newborn_journey_step1/zh-CN/sms.txt"] == REMINDER
    assert "on" in draft["rule"] and "on_date" not in draft["rule"]

    # read back: the page shows the step as saved
    await author.reload()
    step = author.locator("li.fu-step")
    assert await step.count() == 1
    assert await step.locator(".fu-repeat").input_value() == "2"
    assert await step.locator(".fu-text").input_value() == REMINDER

    # a date-driven item: the checker names the field left empty, then it saves
    await author.goto(f"{console['url']}/rules/permit-expiry-test")
    await author.get_by_label("事项名称 Name").fill("证照到期提醒（测试）")
    await author.get_by_label("档案中的日期 a date on the profile").check()
    await author.get_by_label("提前(-)或之后(+)天数 Days before (-) or after (+)").fill("-30")
    await author.locator("#sms-text").fill("您的证照将于{{ data.date }}到期。")
    await author.get_by_role("button", name="保存草稿 Save draft").click()
    await author.locator("#errors").get_by_text("on_date.fact").wait_for()
    await author.get_by_label("日期名称 The date's name on the profile").fill("id_card_expiry")
    await author.get_by_role("button", name="保存草稿 Save draft").click()
    await author.locator("#saved").wait_for()
    await author.screenshot(path=SHOTS / "date-item-editor.png", full_page=True)


async def test_a_live_item_shows_its_outcomes(console, browser):
    planner = console["svc"].runtime.planner
    await console["svc"].runtime.profiles.upsert(
        parse_profile(person("P-OC", mobile="13700000081"))
    )
    await planner.record(
        [(await planner.plan_event(validate_event(graduate_event("E-OC1", "P-OC")))).plan]
    )
    done = graduate_event("E-OC2", "P-OC") | {"type": "hukou.migration.completed",
                                               "occurred_at": local_iso(-60), "data": {"approval_no": "A"}}  # fmt: skip
    await planner.record([(await planner.plan_event(validate_event(done))).plan])
    admin = await signed_in_page(browser, console, "admin")
    await admin.goto(f"{console['url']}/rules/graduate-hukou-transfer")
    table = admin.locator("#outcomes")
    await table.wait_for()
    row = table.locator("tbody tr").first
    assert [await c.inner_text() for c in await row.locator("td").all()][:6] == [
        "v1", "提醒 reminded", "1", "0", "1", "100.0%"]  # fmt: skip
    await admin.screenshot(path=SHOTS / "outcomes.png", full_page=True)


async def test_a_policy_is_written_in_form_fields_approved_by_a_colleague_and_explains_a_match(
    console, browser
):
    await console["svc"].runtime.profiles.upsert(parse_profile(enterprise("E-PB", contacts=[]) | {
        "size": "micro", "dates": {"registered_on": local_iso(-86400)[:10]}}))  # fmt: skip
    author = await signed_in_page(browser, console, "yt-author")
    await author.get_by_role("link", name="惠企政策 Policies").click()
    await author.wait_for_url("**/policies")
    await author.get_by_label("新政策编号 New policy id").fill("yt-browser-grant")
    await author.get_by_role("button", name="新建 Create").click()
    await author.wait_for_url("**/policies/yt-browser-grant")
    await author.get_by_label("政策名称 Name").fill("盐田区开办补贴（测试）")
    await author.get_by_label("政策内容 What it offers").fill("新设立的小微企业一次性开办补贴")
    await author.get_by_label("需企业确认的事项 What the enterprise confirms").fill("开户银行账号")
    await author.get_by_label("办理渠道 Where").fill("i深圳")
    await author.get_by_label("微型 micro").check()
    await author.get_by_label("小型 small").check()
    await author.get_by_label("成立不超过（月）at most").fill("12")
    await author.get_by_label("有效期至 Valid until").fill(
        "2020-01-01"
    )  # before it starts: refused
    await author.get_by_label("有效期自 Valid from").fill("2026-01-01")
    await author.get_by_role("button", name="提交审核 Save for approval").click()
    await author.locator("#policy-errors").get_by_text("valid_until").wait_for()
    await author.get_by_label("有效期至 Valid until").fill("")
    await author.get_by_role("button", name="提交审核 Save for approval").click()
    await author.locator("#policy-saved").wait_for()
    await author.screenshot(path=SHOTS / "policy-editor.png", full_page=True)

    approver = await signed_in_page(browser, console, "yt-approver")
    await approver.goto(f"{console['url']}/policies/yt-browser-grant")
    await approver.get_by_role("button", name="批准 Approve").click()
    await approver.locator("#policy-step-done").get_by_text("v1").wait_for()
    await approver.goto(f"{console['url']}/policies")
    await approver.get_by_label("企业编号（统一社会信用代码）Enterprise id").fill("E-PB")
    await approver.get_by_role("button", name="查询 Check").click()
    found = approver.locator("#enterprise-policies li", has_text="盐田区开办补贴（测试）")
    await found.get_by_text("符合 meets").wait_for()
    said = await found.inner_text()  # each criterion named for staff, then explained
    assert "✓ 成立时间 age_months: registered" in said and "months old" in said
    await approver.screenshot(path=SHOTS / "policies.png", full_page=True)
