"""Backtest: a draft run against a few hundred past events read back from life-events gives the
counts a direct computation over the same events and profiles gives; nothing is sent."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from app.intake.events import validate_event
from bench.harness import load_profiles
from tests.helpers import graduate_event, person
from tests.integration.test_console import PASSWORD, sign_in  # noqa: F401
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from tests.integration.test_rulebook import RULE, live_rule, put_draft
from wiring.kafka import publish

TZ = ZoneInfo("Asia/Shanghai")
SCHOOLS = ("深圳大学", "南方科技大学", "深圳技术大学")


def past_events(now: datetime, count: int) -> list[dict]:
    docs = []
    for i in range(count):
        doc = graduate_event(f"E-BT-{i}", f"P-BT-{i % 70}")  # P-BT-60…69 have no profile
        doc["occurred_at"] = (now - timedelta(hours=1 + 3.5 * i)).isoformat()
        doc["data"] = dict(doc["data"], school=SCHOOLS[i % 3], approval_no=f"SZJS-{i:04d}")
        docs.append(doc)
    return docs


def direct(docs, profiles, wanted) -> tuple[int, set[str], dict[str, Counter]]:
    """What each side should count, computed straight from the documents."""
    messages, recipients, by_day = 0, set(), {}
    for doc in docs:
        profile = profiles.get(doc["subject"]["id"])
        if profile is None or not wanted(doc):
            continue
        day = datetime.fromisoformat(doc["occurred_at"]).astimezone(TZ).date().isoformat()
        for channel in ("sms", "email"):
            if profile.get("mobile" if channel == "sms" else "email"):
                messages += 1
                recipients.add(profile["id"])
                by_day.setdefault(day, Counter())[channel] += 1
    return messages, recipients, by_day


async def test_a_backtest_counts_what_a_direct_computation_counts(console):
    settings = console["settings"]
    profiles = {f"P-BT-{i}": person(f"P-BT-{i}", mobile=f"138000{i:05d}",
                                    email=f"bt{i}@example.cn" if i % 3 == 0 else None)
                for i in range(60)}  # fmt: skip
    await load_profiles(settings, list(profiles.values()))
    now = datetime.now(TZ)
    docs = past_events(now, 300)
    docs.append(dict(docs[5]))  # the same event published twice counts once
    publish(settings.kafka_servers, [validate_event(d) for d in docs])
    docs = docs[:-1]
    since, until = now - timedelta(days=40), now
    in_range = [d for d in docs if since <= datetime.fromisoformat(d["occurred_at"]) < until]
    assert 250 < len(in_range) < 300  # the oldest fall outside the window

    author, csrf = await sign_in(console, "yt-author")
    try:
        rule, _ = await live_rule(author, console)
        draft = {**rule, "districts": ["440308"], "when": 'data.school == "深圳大学"'}
        assert (await put_draft(author, csrf, console, draft, {}))["errors"] == []
        response = await author.post(f"{console['url']}/api/rules/{RULE}/backtest",
                                     json={"from": since.isoformat(), "to": until.isoformat()})  # fmt: skip
        assert response.status == 200, await response.text()
        got = await response.json()
    finally:
        await author.close()

    assert got["events"] == len(in_range) and not got["truncated"]
    live = direct(in_range, profiles, lambda d: True)
    drafted = direct(in_range, profiles, lambda d: d["data"]["school"] == "深圳大学")
    for side, (messages, recipients, by_day) in (("live", live), ("draft", drafted)):
        assert got[side]["messages"] == messages, side
        assert got[side]["recipients"] == len(recipients), side
        assert got[side]["by_day"] == {
            day: dict(sorted(c.items())) for day, c in sorted(by_day.items())
        }, side
    assert got["difference"]["messages"] == drafted[0] - live[0] < 0
    assert not Path(settings.sms_url.removeprefix("file://")).exists()  # nothing was sent
    assert console["sink"].received() == []


async def test_a_backtest_refuses_odd_windows(console):
    author, _ = await sign_in(console, "yt-author")
    try:
        url = f"{console['url']}/api/rules/{RULE}/backtest"
        for body in ({}, {"from": "yesterday", "to": "today"},
                     {"from": "2026-11-01T00:00:00", "to": "2026-11-02T00:00:00"},
                     {"from": "2026-11-02T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"},
                     {"from": "2020-01-01T00:00:00+08:00", "to": "2026-01-01T00:00:00+08:00"}):  # fmt: skip
            assert (await author.post(url, json=body)).status == 400, body
    finally:
        await author.close()
