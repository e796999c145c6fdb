"""The operators' dashboard in a real browser (Debian's chromium): the figures it shows are the
API's, from what a running worker did, and it redraws itself when more happens."""

from __future__ import annotations

import uuid

from app.intake.events import validate_event
from bench.harness import Workers, load_profiles, wait_until
from tests.browser.test_console_story import SHOTS, signed_in_page
from tests.browser.test_console_story import browser as browser  # noqa: F401 - a fixture
from tests.conftest import LOGS
from tests.helpers import graduate_event, person
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from tests.integration.test_console import sign_in
from wiring.kafka import publish

RULE = "graduate-hukou-transfer"


async def test_the_dashboard_shows_what_the_api_says_and_refreshes_itself(console, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings = console["settings"]
    workers = Workers(settings, LOGS / f"dashboard-{uuid.uuid4().hex[:6]}")
    proc = workers.start()
    api, _ = await sign_in(console, "sz-operator")
    try:
        assert await workers.ready(proc), "the worker did not start"
        await load_profiles(settings, [person(f"P-DB{i}", mobile=f"13800000{800 + i}",
                                              email=f"db{i}@example.cn" if i < 3 else None) for i in range(8)])  # fmt: skip
        publish(
            settings.kafka_servers,
            [validate_event(graduate_event(f"E-DB{i}", f"P-DB{i}")) for i in range(6)],
        )

        async def figures():
            response = await api.get(f"{console['url']}/api/dashboard")
            assert response.status == 200
            return await response.json()

        async def sent(n):
            data = await figures()
            return (
                data["hour"]["totals"]["sms"]["sent"] == n
                and data["hour"]["totals"]["email"]["sent"] == 3
            )

        assert await wait_until(lambda: sent(6), 60, every=0.5)

        async def settled():  # lag moves until the worker has committed: compare once it is still
            return not any((await figures())["lag"].values())

        assert await wait_until(settled, 30, every=0.5)
        data = await figures()
        page = await signed_in_page(browser, console, "sz-operator")
        await page.get_by_role("link", name="看板 Dashboard").click()
        await page.wait_for_url("**/dashboard")
        shown = {key: await page.locator(f"#{key}").inner_text() for key in (
            "hour-sent-sms", "hour-sent-email", "day-sent-sms", "fig-deferred", f"rule-{RULE}-sent",
            "hour-events-planned")}  # fmt: skip
        assert shown == {
            "hour-sent-sms": str(data["hour"]["totals"]["sms"]["sent"]),
            "hour-sent-email": str(data["hour"]["totals"]["email"]["sent"]),
            "day-sent-sms": str(data["day"]["totals"]["sms"]["sent"]),
            "fig-deferred": str(data["deferred"]),
            f"rule-{RULE}-sent": str(next(r["sent"] for r in data["rules"] if r["rule"] == RULE)),
            "hour-events-planned": str(data["hour"]["totals"]["events"]["planned"]),
        }
        assert shown["hour-sent-sms"] == "6" and shown["hour-events-planned"] == "6"
        for topic, behind in data["lag"].items():
            assert await page.locator(f"#lag-{topic}").inner_text() == str(behind)
        assert await page.locator("#hour-rate-sms").inner_text() == "0.0 %"
        await page.screenshot(path=SHOTS / "dashboard.png", full_page=True)

        # more happens; the page shows it without being reloaded
        publish(
            settings.kafka_servers,
            [validate_event(graduate_event(f"E-DB{i}", f"P-DB{i}")) for i in (6, 7)],
        )
        await page.locator("#hour-sent-sms").get_by_text("8", exact=True).wait_for(timeout=45_000)
        assert (await figures())["hour"]["totals"]["sms"]["sent"] == 8

        # the hotline: the operator searches a profile (its SMS and its e-mail)
        await page.get_by_role("link", name="消息查询 Messages").click()
        await page.wait_for_url("**/messages")
        await page.get_by_label("手机号、邮箱或档案编号 Mobile, e-mail or profile id").fill("P-DB1")
        await page.get_by_role("button", name="查询 Search").click()
        await page.wait_for_url("**/messages?to=*")
        api_says = await (await api.get(f"{console['url']}/api/messages",
                                        params={"to": "P-DB1"})).json()  # fmt: skip
        rows = page.locator("#messages-table tr.message")
        assert await rows.count() == len(api_says["notifications"]) == 2  # an SMS and an e-mail
        shown = sorted(await rows.locator("td.status").all_inner_texts())
        assert shown == sorted(n["status"] for n in api_says["notifications"]) == ["sent", "sent"]
        await page.screenshot(path=SHOTS / "messages.png", full_page=True)
    finally:
        await api.close()
        workers.stop_all()
