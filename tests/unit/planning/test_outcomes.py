"""Outcomes: the figures the store reports equal a direct computation over generated journeys,
the holdout included; the holdout gets nothing of the rule and its journeys are counted apart."""

import random
import statistics
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from app.core.settings import PROJECT_ROOT
from app.intake.events import validate_event
from app.planning.journeys import in_holdout, parse_share
from app.planning.rules import load_rules
from app.profiles.validate import parse_profile
from app.rendering.renderer import Renderer
from tests.helpers import ON_BOTH_REDIS, acting_planner, graduate_event, person

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 86400.0
RULE = """
id: graduate-measured
version: 3
name: 毕业生接收获批 → 户籍迁入（测量）
on: graduate.reception.approved
category: reminder
recipients: {subject: true}
channels: {sms: graduate_hukou_transfer}
follow_up:
  stop_on: hukou.migration.completed
  window: 7d
  holdout: 30%
  steps:
    - {after: 3d, channels: {sms: graduate_hukou_reminder}}
"""


def test_shares_and_the_holdout_draw():
    assert [parse_share(v) for v in ("5%", "0.05", 0, "100%", 1)] == [0.05, 0.05, 0.0, 1.0, 1.0]
    assert [parse_share(v) for v in ("-1%", "5 percent", True, None, 1.5, [])] == [None] * 6
    drawn = [in_holdout("r", f"P-{i}", 0.2) for i in range(20_000)]
    assert 0.18 < sum(drawn) / len(drawn) < 0.22  # evenly drawn
    assert drawn == [in_holdout("r", f"P-{i}", 0.2) for i in range(20_000)]  # and the same again
    assert not any(in_holdout("r", f"P-{i}", 0.0) for i in range(1000))


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, SHANGHAI).isoformat(timespec="seconds")


@pytest.fixture
def planner_for(tmp_path, redis_client, prefix):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "measured.yaml").write_text(RULE, encoding="utf-8")
    planner = acting_planner(redis_client, prefix, rules, SHANGHAI)
    assert not planner.rules.errors, planner.rules.errors
    return planner


@ON_BOTH_REDIS
async def test_outcome_figures_equal_a_direct_computation_over_generated_journeys(planner_for):
    planner, rng = planner_for, random.Random(14)
    now = datetime.now(SHANGHAI).timestamp()
    window = 7 * DAY
    journeys = []  # (subject, group, started, completed or None)
    for i in range(240):
        subject = f"P-{i:04d}"
        await planner.store.upsert(parse_profile(person(subject, mobile=f"1370000{i:04d}")))
        started = round(now - rng.uniform(0.2, 25) * DAY)  # some windows closed, some still open
        completed = None
        if rng.random() < 0.6:  # some completed, some late, some before the first message
            completed = round(min(now - 60, started + rng.uniform(-0.1, 12) * DAY))
        start_event = graduate_event(f"E-GR-{i}", subject) | {"occurred_at": iso(started)}
        plan = (await planner.plan_event(validate_event(start_event))).plan
        group = "reminded" if plan.notifications else "holdout"  # what was sent says which
        await planner.record([plan])
        if completed is not None:
            done = {**start_event, "id": f"E-HK-{i}", "type": "hukou.migration.completed",
                    "occurred_at": iso(completed), "data": {"approval_no": f"A-{i}"}}  # fmt: skip
            await planner.record([(await planner.plan_event(validate_event(done))).plan])
        journeys.append((subject, group, started, completed))
    # a completion redelivered, and a second completion of the same subject, count nothing more
    i, (subject, _, _, completed) = next((i, j) for i, j in enumerate(journeys) if j[3] is not None)
    for event_id, when in ((f"E-HK-{i}", completed), (f"E-HK-{i}-again", now - 30)):
        again = {**graduate_event(event_id, subject), "type": "hukou.migration.completed",
                 "occurred_at": iso(when), "data": {"approval_no": "A-2"}}  # fmt: skip
        await planner.record([(await planner.plan_event(validate_event(again))).plan])

    figures = {c.group: c for c in await planner.outcomes.figures("graduate-measured", now)}
    assert {c.version for c in figures.values()} == {3}
    assert figures["holdout"].started > 40 and figures["reminded"].started > 120  # both drawn
    for group in ("reminded", "holdout"):
        mine = [(s, c) for _, g, s, c in journeys if g == group]
        durations = [max(0.0, c - s) for s, c in mine if c is not None and c - s <= window]
        still_open = sum(1 for s, c in mine if s > now - window and c is None)
        decided = len(mine) - still_open
        got = figures[group]
        assert (got.started, got.open, got.decided, got.completed) == (
            len(mine),
            still_open,
            decided,
            len(durations),
        )
        assert got.rate == pytest.approx(len(durations) / decided)
        assert got.median_seconds == pytest.approx(statistics.median(durations), abs=0.01)
        assert got.window_seconds == window


@ON_BOTH_REDIS
async def test_the_holdout_is_sent_nothing_and_its_journey_only_waits_for_the_completion(
    planner_for,
):
    planner = planner_for
    held = next(f"P-{i}" for i in range(1000) if in_holdout("graduate-measured", f"P-{i}", 0.3))
    reminded = next(f"P-{i}" for i in range(1000)
                    if not in_holdout("graduate-measured", f"P-{i}", 0.3))  # fmt: skip
    for subject in (held, reminded):
        await planner.store.upsert(parse_profile(person(subject, mobile="13700001111")))
    plans = [(await planner.plan_event(validate_event(graduate_event(f"E-{s}", s)))).plan
             for s in (held, reminded)]  # fmt: skip
    assert [len(p.notifications) for p in plans] == [0, 1]
    assert any("holdout" in why for _, why in plans[0].skipped)
    await planner.record(plans)
    assert await planner.journeys.queued() == 1  # only the reminded one has a follow-up due
    [held_journey] = await planner.journeys.waiting("hukou.migration.completed", held)
    record = await planner.journeys.journey(held_journey)
    assert (record["group"], record["status"]) == ("holdout", "holdout")
    plan, why = await planner.plan_step(held_journey, record, datetime.now().timestamp() + 9 * DAY)
    assert plan is None and why == "over"
    steps = await planner.state.steps(f"E-{held}")
    assert [s["group"] for s in steps if s["step"] == "journey started"] == ["holdout"]
    # the event's trace in the order it happened
    assert [s["step"] for s in steps] == ["received", "planned", "journey started"]


@pytest.mark.parametrize(
    "follow_up, field, words",
    [
        (
            "{stop_on: hukou.migration.completed, holdout: 60%, steps: [{after: 1d}]}",
            "follow_up.holdout",
            "0 to 50%",
        ),
        (
            "{stop_on: hukou.migration.completed, window: 2y, steps: [{after: 1d}]}",
            "follow_up.window",
            "at most 365d",
        ),
        ("{stop_on: hukou.migration.completed, window: 400d}", "follow_up.window", "365d"),
        ("{holdout: 5%, steps: [{after: 1d}]}", "follow_up.holdout", "needs `stop_on`"),
        ("{steps: []}", "follow_up", "`stop_on` to measure"),
    ],
)
def test_a_bad_window_or_holdout_is_refused_with_its_field(tmp_path, follow_up, field, words):
    rules = tmp_path / "rules"
    rules.mkdir()
    text = RULE.split("follow_up:")[0] + f"follow_up: {follow_up}\n"
    (rules / "r.yaml").write_text(text, encoding="utf-8")
    result = load_rules(rules, Renderer(PROJECT_ROOT / "templates", signature="", tz=SHANGHAI))
    assert [(e.rule_id, e.field) for e in result.errors] == [("graduate-measured", field)]
    assert words in result.errors[0].message


def test_a_rule_with_only_a_completion_event_measures_without_reminding(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (
        RULE.split("follow_up:")[0]
        + "follow_up: {stop_on: hukou.migration.completed, window: 14d}\n"
    )
    (rules / "r.yaml").write_text(text, encoding="utf-8")
    result = load_rules(rules, Renderer(PROJECT_ROOT / "templates", signature="", tz=SHANGHAI))
    assert not result.errors
    follow_up = result.rules[0].follow_up
    assert follow_up is not None and follow_up.steps == () and follow_up.window_seconds == 14 * DAY
