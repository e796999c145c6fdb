"""Calendar rules: dates of the year, each sent once a year to the rule's audience; the queue
keeps one entry per rule, scheduled by the leader and moved on when a date was sent."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.intake.events import validate_event
from app.planning.calendar import CalendarTrigger, next_date, parse_calendar
from app.profiles.validate import parse_profile
from tests.helpers import ON_BOTH_REDIS, acting_planner, contact, enterprise, person

SHANGHAI = ZoneInfo("Asia/Shanghai")
QUARTERLY = CalendarTrigger(dates=((1, 8), (4, 8), (7, 8), (10, 8)), at=(9, 0))


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


def test_the_next_date_is_today_until_it_is_sent_then_the_following_one():
    assert next_date(QUARTERLY, at("2027-04-08T07:00"), SHANGHAI, None) == (
        at("2027-04-08T09:00"),
        "2027-04-08",
    )
    # after its time on the day it fires at once; once sent, the next quarter's
    assert next_date(QUARTERLY, at("2027-04-08T15:00"), SHANGHAI, None) == (
        at("2027-04-08T15:00"),
        "2027-04-08",
    )
    assert next_date(QUARTERLY, at("2027-04-08T15:00"), SHANGHAI, "2027-04-08") == (
        at("2027-07-08T09:00"),
        "2027-07-08",
    )
    # a day gone by unsent is not sent late; the year turns over
    assert next_date(QUARTERLY, at("2027-10-09T08:00"), SHANGHAI, "2027-07-08")[1] == "2028-01-08"


def test_29_february_falls_on_the_28th_in_other_years():
    leap = CalendarTrigger(dates=((2, 29),))
    assert next_date(leap, at("2027-01-01T00:00"), SHANGHAI, None)[1] == "2027-02-28"
    assert next_date(leap, at("2028-01-01T00:00"), SHANGHAI, None)[1] == "2028-02-29"


@pytest.mark.parametrize(
    "doc, field",
    [
        ({"dates": ["13-01"]}, "on_calendar.dates[0]"),
        ({"dates": ["02-30"]}, "on_calendar.dates[0]"),
        ({"dates": []}, "on_calendar.dates"),
        ({"dates": ["06-01"], "at": "25:00"}, "on_calendar.at"),
        ({"dates": ["06-01"], "every": "month"}, "on_calendar.every"),
        ("06-01", "on_calendar"),
    ],
)
def test_a_bad_calendar_is_refused_with_its_field(doc, field):
    said = []
    assert parse_calendar(doc, lambda f, m: said.append(f)) is None
    assert said == [field]


RULES = """
- id: annual-report
  name: 企业年报
  on_calendar: {dates: ["06-01"], at: "09:00"}
  category: reminder
  recipients: {audience: {kind: enterprise}, contacts: [legal_representative]}
  channels: {sms: enterprise_annual_report}
- id: a-date-event-by-hand
  name: refused
  on: calendar.date.due
  category: reminder
  recipients: {audience: {kind: enterprise}}
  channels: {sms: enterprise_annual_report}
- id: a-calendar-to-a-subject
  name: refused
  on_calendar: {dates: ["06-01"]}
  category: reminder
  recipients: {subject: true}
  channels: {sms: enterprise_annual_report}
"""


@pytest.fixture
def planner(tmp_path, redis_client, prefix):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "calendar.yaml").write_text(RULES, encoding="utf-8")
    planner = acting_planner(redis_client, prefix, rules, SHANGHAI)
    assert sorted((e.rule_id, e.field) for e in planner.rules.errors) == [
        ("a-calendar-to-a-subject", "recipients.subject"), ("a-date-event-by-hand", "on")]  # fmt: skip
    return planner


@ON_BOTH_REDIS
async def test_a_calendar_date_reaches_the_audience_once_a_year(planner):
    for profile in (
        enterprise("E-1", contacts=[contact("legal_representative", "13900000001")]),
        enterprise("E-2", contacts=[contact("legal_representative", "13900000002")]),
        person("P-1", mobile="13700000001"),
    ):
        await planner.store.upsert(parse_profile(profile))
    day = at("2027-06-01T10:00")  # after 09:00 on the day: due at once
    await planner.dated.schedule_calendar(day)
    assert await planner.dated.queue.when("annual-report", "*") == day
    [(rule, member, event)] = await planner.dated.due_events(day)
    assert (rule, member, event["id"], event["data"]["date"]) == (
        "annual-report",
        "*",
        "cal:annual-report:2027-06-01",
        "2027-06-01",
    )
    plan = await planner.plan(validate_event(event))
    assert sorted(n.profile_id for n in plan.notifications) == ["E-1", "E-2"]
    assert "2027" in plan.notifications[0].content["text"]
    await planner.dated.queue.mark_sent("annual-report", "*", "2027-06-01")
    await planner.dated.schedule_calendar(day + 60)
    assert await planner.dated.queue.when("annual-report", "*") == at("2028-06-01T09:00")
    assert await planner.dated.due_events(day + 60) == []
